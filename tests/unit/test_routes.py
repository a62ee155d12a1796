"""twinserve/routes.py: every caller's route to a model, from one function (Nginx serves these)."""

from twinserve.routes import route_for


def test_each_model_has_its_own_production_and_staging_route():
    assert route_for("digits") == "/predict/digits"
    assert route_for("digits", staging=True) == "/test/predict/digits"
    assert route_for("regressor") != route_for("digits")
