"""twinserve/routes.py: every caller's route to a model, from one function (Nginx serves these)."""

from twinserve.routes import PRODUCTION, STAGING, predictions_path, route_for, routes


def test_each_model_has_its_own_production_and_staging_route():
    assert route_for("digits") == "/predict/digits"
    assert route_for("digits", staging=True) == "/test/predict/digits"
    assert route_for("regressor") != route_for("digits")


def test_the_unnamed_routes_serve_the_default_model():
    assert route_for() == "/predict"
    assert route_for(staging=True) == "/test/predict"
    found = {(r.path, r.route, r.model) for r in routes(["a", "b"], "b")}
    assert found == {
        ("/predict", PRODUCTION, "b"), ("/test/predict", STAGING, "b"),
        ("/predict/a", PRODUCTION, "a"), ("/test/predict/a", STAGING, "a"),
        ("/predict/b", PRODUCTION, "b"), ("/test/predict/b", STAGING, "b"),
    }  # fmt: skip


def test_the_staging_label_is_the_one_nginx_and_its_metrics_already_use():
    # the label is on the wire (X-Twinserve-Route, metrics' route label, access_test.log): renaming it
    # would change what dashboards and alerts see, so it stays "test" while Python says staging.
    assert (PRODUCTION, STAGING) == ("production", "test")
    assert predictions_path("digits") == "/predictions/digits"
