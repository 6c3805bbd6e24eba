"""The Grafana dashboard reads only series the service exports: ours from
the catalogue, Serve's as test_metrics.py finds them in a real scrape."""

import json

from tests.helpers.grafana_dashboard import DASHBOARD, SERIES, dashboard_series, expressions
from voicegraph.core.metrics import CATALOGUE


def test_every_panel_has_a_title_and_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel


def test_every_expression_is_balanced_and_filters_by_application():
    for expr in expressions():
        depth = 0
        for char in expr:
            depth += {"(": 1, ")": -1}.get(char, 0)
            assert depth >= 0, expr
        assert depth == 0, expr
        # Every series in it is narrowed to the chosen applications.
        assert expr.count('application=~"$application"') == len(SERIES.findall(expr)), expr


def test_our_series_are_catalogued_and_the_rest_are_serves():
    ours = {name for spec in CATALOGUE.values() for name in spec.exported}
    used = dashboard_series()
    assert {name for name in used if name.startswith("ray_voicegraph_")} <= ours
    assert all(name.startswith(("ray_voicegraph_", "ray_serve_")) for name in used)


def test_every_catalogued_metric_is_on_the_dashboard():
    used = dashboard_series()
    assert [name for name, spec in CATALOGUE.items() if not set(spec.exported) & used] == []
