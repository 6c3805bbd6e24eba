"""What cluster/grafana-dashboard.json queries."""

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "cluster" / "grafana-dashboard.json"
SERIES = re.compile(r"\bray_[a-z0-9_]+\b")


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def dashboard_series() -> set[str]:
    return {name for expr in expressions() for name in SERIES.findall(expr)}
