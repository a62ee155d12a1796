"""twinserve/routes.py: every caller's route to a model, from one function."""

from twinserve.routes import route_for


def test_production_and_staging_routes_differ_and_staging_is_the_test_route():
    assert route_for("digits").startswith("/predict")
    assert route_for("digits", staging=True) == "/test" + route_for("digits")
