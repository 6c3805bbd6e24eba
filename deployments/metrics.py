"""The metrics sink of a Serve replica: catalogue records → `ray.serve.metrics`.

Each replica calls `install_serve_metrics()` in its constructor; Serve adds
the application, deployment and replica tags itself.
"""

from __future__ import annotations

from ray.serve.metrics import Counter, Gauge, Histogram

from voicegraph.core import metrics
from voicegraph.core.metrics import MetricSpec


class ServeMetricsSink:
    def __init__(self):
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}

    def _metric(self, spec: MetricSpec) -> Counter | Gauge | Histogram:
        metric = self._metrics.get(spec.name)
        if metric is None:
            if spec.kind == "counter":
                metric = Counter(spec.name, description=spec.description, tag_keys=spec.tags)
            elif spec.kind == "gauge":
                metric = Gauge(spec.name, description=spec.description, tag_keys=spec.tags)
            else:
                metric = Histogram(
                    spec.name, description=spec.description, boundaries=list(spec.boundaries), tag_keys=spec.tags
                )
            self._metrics[spec.name] = metric
        return metric

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None:
        metric = self._metric(spec)
        if spec.kind == "counter":
            metric.inc(value, tags=tags)
        elif spec.kind == "gauge":
            metric.set(value, tags=tags)
        else:
            metric.observe(value, tags=tags)


def install_serve_metrics() -> None:
    metrics.install(ServeMetricsSink())
