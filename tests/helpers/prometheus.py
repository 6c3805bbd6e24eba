"""The service's metrics as Prometheus scrapes them from Ray's metrics endpoint."""

import httpx
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> list:
    """Every sample Ray exports now: (name, labels, value)."""
    text = httpx.get(url, timeout=10).text
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: list, name: str, **labels: str) -> float:
    """The sum over replicas of one series of one application (default: voicegraph)."""
    wanted = {"application": "voicegraph", **labels}
    return sum(
        value for sample_name, sample_labels, value in samples
        if sample_name == name and wanted.items() <= sample_labels.items()
    )
