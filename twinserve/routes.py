"""Where a model is served through Nginx, in one place: every caller (smoke, load tests, bench,
pipeline) asks here. Nginx's side is nginx/nginx.conf.j2 (`/predict/<model>`, `/test/predict/<model>`)."""


def route_for(model: str, staging: bool = False) -> str:
    """The path of `model`'s production route (staging: its test route), e.g. /predict/digits.

    Args:
        model: a model of the stack description.
        staging: the staging colour's route instead of production's.
    """
    return f"/test/predict/{model}" if staging else f"/predict/{model}"
