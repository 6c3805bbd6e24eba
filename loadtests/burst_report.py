"""What a burst did (loadtests/locust_burst.py): its answers, tallied, and from
the service's own metrics, the chunks synthesized that no client received.

Plain Python with no Locust import, so the unit tests import it without
gevent's monkeypatching.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Every chunk the Synthesizers made, and (from this version on) why chunks were taken back.
CHUNKS = "ray_voicegraph_chunks_total"
TAKEN_BACK = "ray_voicegraph_chunks_cancelled_total"
CANCELLED_AT_SYNTHESIZER = "ray_voicegraph_synthesizer_chunks_cancelled_total"


@dataclass
class Tally:
    answered: int = 0
    answered_late: int = 0  # a 200 that came after the client's timeout would have
    refused: int = 0  # 503 with Retry-After
    timed_out: int = 0  # the client gave up
    other: dict[str, int] = field(default_factory=dict)  # any other outcome, by status or error
    answered_chunks: int = 0  # X-Chunk-Count of the 200s: the chunks someone received
    slowest_answer_s: float = 0.0
    slowest_refusal_s: float = 0.0
    retry_after_s: list[int] = field(default_factory=list)

    def add(self, status: int | str, seconds: float, client_timeout_s: float, headers: dict[str, str]) -> None:
        if status == 200:
            self.answered += 1
            self.answered_late += seconds > client_timeout_s
            self.answered_chunks += int(headers.get("x-chunk-count", 0))
            self.slowest_answer_s = max(self.slowest_answer_s, seconds)
        elif status == 503 and "retry-after" in headers:
            self.refused += 1
            self.slowest_refusal_s = max(self.slowest_refusal_s, seconds)
            self.retry_after_s.append(int(headers["retry-after"]))
        elif status == "timeout":
            self.timed_out += 1
        else:
            self.other[str(status)] = self.other.get(str(status), 0) + 1


def scrape(metrics_url: str, application: str) -> dict[str, float]:
    """The application's chunk counters now, summed over replicas and engines."""
    text = httpx.get(metrics_url, timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("application") != application:
                continue
            if sample.name == CHUNKS and labels.get("outcome") == "ok":
                key = "synthesized"
            elif sample.name == TAKEN_BACK:
                key = f"taken_back_{labels.get('reason')}"
            elif sample.name == CANCELLED_AT_SYNTHESIZER:
                key = f"synthesizer_cancelled_{labels.get('stage')}"
            else:
                continue
            counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def report(tally: Tally, before: dict[str, float], after: dict[str, float], users: int, requests: int) -> dict:
    """The burst's numbers: what clients got, and what the service spent on nobody."""
    change = {key: after.get(key, 0.0) - before.get(key, 0.0) for key in after}
    synthesized = int(change.get("synthesized", 0))
    retry_after = sorted(tally.retry_after_s)
    return {
        "users": users,
        "requests": requests,
        **{key: value for key, value in asdict(tally).items() if key != "retry_after_s"},
        "retry_after_s": {"min": retry_after[0], "max": retry_after[-1]} if retry_after else None,
        "chunks_synthesized": synthesized,
        # Made and never received: for clients that timed out or left, or cut off by an error.
        "chunks_for_nobody": synthesized - tally.answered_chunks,
        # Present where the service counts them (this version on).
        "chunks_taken_back": {
            key.removeprefix("taken_back_"): int(n) for key, n in change.items() if key.startswith("taken_back_")
        },
        "chunks_finished_after_the_client_left": int(change.get("synthesizer_cancelled_running", 0)),
    }


def format_report(numbers: dict) -> str:
    lines = [
        f"burst: {numbers['users']} users, {numbers['requests']} requests",
        f"  answered      {numbers['answered']} (after the client's timeout: {numbers['answered_late']}; "
        f"slowest {numbers['slowest_answer_s']:.2f} s)",
        f"  refused       {numbers['refused']} (slowest {numbers['slowest_refusal_s']:.2f} s; "
        f"Retry-After {numbers['retry_after_s']})",
        f"  timed out     {numbers['timed_out']}",
        f"  other         {numbers['other'] or 0}",
        f"  chunks synthesized {numbers['chunks_synthesized']}, for nobody {numbers['chunks_for_nobody']}, "
        f"taken back {numbers['chunks_taken_back'] or 'not counted'}, "
        f"finished after the client left {numbers['chunks_finished_after_the_client_left']}",
    ]
    return "\n".join(lines)


def write(numbers: dict, path: str) -> None:
    with open(path, "w") as out:
        json.dump(numbers, out, indent=2)
        out.write("\n")
