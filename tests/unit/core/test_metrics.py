import pytest

from voicegraph.core import metrics
from voicegraph.core.metrics import CATALOGUE, MetricSpec


def test_records_reach_the_installed_sink_with_tags_as_strings(recorded_metrics):
    metrics.count("voicegraph_http_requests", route="/v1/tts", method="POST", status=200)
    metrics.observe("voicegraph_time_to_first_audio_s", 0.04)
    metrics.set_gauge("voicegraph_jobs", 3, status="queued")
    assert recorded_metrics.records == [
        ("voicegraph_http_requests", 1.0, {"route": "/v1/tts", "method": "POST", "status": "200"}),
        ("voicegraph_time_to_first_audio_s", 0.04, {}),
        ("voicegraph_jobs", 3, {"status": "queued"}),
    ]


@pytest.mark.parametrize(
    "record",
    [
        lambda: metrics.count("voicegraph_http_requests", route="/v1/tts"),  # a tag missing
        lambda: metrics.count("voicegraph_chunks", engine="x", outcome="ok", voice="v"),  # one too many
        lambda: metrics.observe("voicegraph_chunks", 1.0, engine="x", outcome="ok"),  # a counter observed
    ],
)
def test_a_record_that_does_not_match_its_catalogue_entry_fails_where_it_is_written(record):
    with pytest.raises(ValueError, match="recorded as"):
        record()


def test_an_unknown_name_fails():
    with pytest.raises(KeyError):
        metrics.count("voicegraph_no_such_metric")


def test_without_a_sink_records_are_dropped(recorded_metrics):
    metrics.install(None)
    metrics.count("voicegraph_replica_fault_resends")
    # Dropped, not kept back for the next sink: it gets only what comes after it.
    metrics.install(recorded_metrics)
    metrics.count("voicegraph_replica_fault_resends", 2)
    assert recorded_metrics.records == [("voicegraph_replica_fault_resends", 2, {})]


def test_catalogue_names_are_prefixed_and_histograms_have_sorted_buckets():
    for name, spec in CATALOGUE.items():
        assert name == spec.name and name.startswith("voicegraph_")
        assert spec.description
        if spec.kind == "histogram":
            assert list(spec.boundaries) == sorted(set(spec.boundaries)) and spec.boundaries
        else:
            assert spec.boundaries == ()


@pytest.mark.parametrize(
    ("kind", "exported"),
    [
        ("counter", ("ray_x_total",)),
        ("gauge", ("ray_x",)),
        ("histogram", ("ray_x_bucket", "ray_x_count", "ray_x_sum")),
    ],
)
def test_exported_names_are_what_ray_writes(kind, exported):
    assert MetricSpec("x", kind, "d").exported == exported
