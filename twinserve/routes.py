"""Where a model is served through Nginx, in one place: every caller (smoke, load tests, bench,
pipeline) asks here, so moving a model to its own route is a one-line change."""


def route_for(model: str, staging: bool = False) -> str:
    """The path of `model`'s production route (staging: its test route), e.g. /predict/digits.

    Args:
        model: a model of the stack description.
        staging: the staging colour's route instead of production's.
    """
    return "/test/predict" if staging else "/predict"
