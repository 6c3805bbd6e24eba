"""The service's own metrics: one catalogue, recorded by name from any layer.

Code anywhere calls `count`, `observe` or `set_gauge` with a catalogued name.
What a record becomes depends on the process: a Serve replica installs a sink
that writes Ray Serve metrics (`deployments/metrics.py`), which Ray's metrics
agent exports to Prometheus as `ray_<name>` (counters with `_total`); where no
sink is installed (unit tests, command-line tools) records are dropped.
docs/operations.md "Metrics" says what each one means and what to alert on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["counter", "gauge", "histogram"]

# Seconds: a cached short request (~10 ms) up to a long text on a slow engine.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# Real-time factor (synthesis time / audio time): under 1 is faster than real time.
RTF_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
JOB_BUCKETS_S = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    @property
    def exported(self) -> tuple[str, ...]:
        """The series names Prometheus sees for this metric (Ray prefixes `ray_`)."""
        base = f"ray_{self.name}"
        if self.kind == "counter":
            return (f"{base}_total",)
        if self.kind == "histogram":
            return (f"{base}_bucket", f"{base}_count", f"{base}_sum")
        return (base,)


CATALOGUE: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        # HTTP, at the ingress
        MetricSpec("voicegraph_http_requests", "counter",
                   "HTTP requests answered, by route template, method and status code",
                   ("route", "method", "status")),
        MetricSpec("voicegraph_http_request_latency_s", "histogram",
                   "Time from request to the last byte of the response, by route template",
                   ("route",), LATENCY_BUCKETS_S),
        MetricSpec("voicegraph_overloaded", "counter",
                   "Requests refused with 503 overloaded, by reason (queue_wait, deadline, chunks_in_flight, "
                   "queue_full: a deployment's queue)", ("reason",)),
        MetricSpec("voicegraph_queue_wait_s", "gauge",
                   "An ingress replica's estimate of the seconds its admitted work has left, by engine",
                   ("engine",)),
        MetricSpec("voicegraph_chunks_cancelled", "counter",
                   "Chunks an ingress replica took back before they came back, by reason (client_left, "
                   "deadline, failed: another chunk of the request failed)", ("reason",)),
        # Synthesis, in the Synthesizer replicas
        MetricSpec("voicegraph_chunks", "counter",
                   "Chunks synthesized, by engine and outcome (ok, failed)", ("engine", "outcome")),
        MetricSpec("voicegraph_chunk_latency_s", "histogram",
                   "Engine time per chunk, retries included, by engine", ("engine",), LATENCY_BUCKETS_S),
        MetricSpec("voicegraph_audio_seconds", "counter",
                   "Seconds of audio synthesized, by engine", ("engine",)),
        MetricSpec("voicegraph_real_time_factor", "histogram",
                   "Engine time / audio time per chunk (below 1: faster than real time), by engine",
                   ("engine",), RTF_BUCKETS),
        MetricSpec("voicegraph_chunk_retries", "counter",
                   "Chunks tried again on the same replica after an engine error, by engine", ("engine",)),
        MetricSpec("voicegraph_synthesizer_chunks_cancelled", "counter",
                   "Chunks whose caller cancelled them, by engine and stage (waiting: never synthesized; "
                   "running: synthesized for a caller that had left)", ("engine", "stage")),
        MetricSpec("voicegraph_replica_fault_resends", "counter",
                   "Chunks resent to another replica because theirs was broken or gone"),
        MetricSpec("voicegraph_voice_loads", "counter",
                   "Voice models a Synthesizer replica loaded (Piper: one per voice file), by engine",
                   ("engine",)),
        MetricSpec("voicegraph_voice_load_s", "histogram",
                   "Seconds to load one voice model, by engine", ("engine",), LATENCY_BUCKETS_S),
        MetricSpec("voicegraph_voice_evictions", "counter",
                   "Voice models a replica let go of to make room for another (least recently used), by engine",
                   ("engine",)),
        # Requests, at the ingress
        MetricSpec("voicegraph_time_to_first_audio_s", "histogram",
                   "Streams: time from the start of synthesis to the first audio sent",
                   (), LATENCY_BUCKETS_S),
        MetricSpec("voicegraph_response_cache", "counter",
                   "Response cache lookups, by result (hit, miss)", ("result",)),
        # Voices, in VoiceProfiles
        MetricSpec("voicegraph_voice_clones", "counter",
                   "References cloned, by source (upload, url)", ("source",)),
        MetricSpec("voicegraph_voice_url_downloads", "counter",
                   "voice_url fetches that transferred a body"),
        MetricSpec("voicegraph_voice_url_cache_hits", "counter",
                   "voice_url requests served from the clone cache"),
        # Jobs: runs at the ingress, the database in the StorageActor
        MetricSpec("voicegraph_jobs", "gauge",
                   "Jobs in the database, by status (queued, running, succeeded, failed, cancelled)",
                   ("status",)),
        MetricSpec("voicegraph_job_runs", "counter",
                   "Job runs ended on an ingress replica, by outcome (succeeded, failed, stopped)",
                   ("outcome",)),
        MetricSpec("voicegraph_job_duration_s", "histogram",
                   "Time from a job's submission to its audio being ready, by outcome",
                   ("outcome",), JOB_BUCKETS_S),
        # Outboxes, in the StorageActor
        MetricSpec("voicegraph_upload_retries", "counter",
                   "Uploads to the bucket that failed and were scheduled again"),
        MetricSpec("voicegraph_uploads_pending", "gauge",
                   "Finished audio spooled locally, waiting for the bucket"),
        MetricSpec("voicegraph_callback_deliveries", "counter",
                   "Callback delivery attempts, by outcome (delivered, failed)", ("outcome",)),
        MetricSpec("voicegraph_callback_outbox_depth", "gauge",
                   "Callbacks not yet delivered (pending retries included)"),
        MetricSpec("voicegraph_callbacks_expired", "gauge",
                   "Callbacks given up after callbacks.expire_after_s without a delivery"),
    )
}


class Sink(Protocol):
    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None: ...


_sink: Sink | None = None


def install(sink: Sink | None) -> None:
    """Send this process's records to `sink` (None: drop them)."""
    global _sink
    _sink = sink


def _record(kind: Kind, name: str, value: float, tags: dict[str, object]) -> None:
    spec = CATALOGUE[name]
    if spec.kind != kind or set(tags) != set(spec.tags):
        # A wrong kind or tag set would export a broken series: fail where it is written.
        raise ValueError(f"{name} is a {spec.kind} with tags {spec.tags}; recorded as a {kind} with {tuple(tags)}")
    if _sink is not None:
        _sink.record(spec, value, {key: str(tag) for key, tag in tags.items()})


def count(name: str, value: float = 1.0, **tags: object) -> None:
    _record("counter", name, value, tags)


def observe(name: str, value: float, **tags: object) -> None:
    _record("histogram", name, value, tags)


def set_gauge(name: str, value: float, **tags: object) -> None:
    _record("gauge", name, value, tags)
