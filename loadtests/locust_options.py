"""The load test's options and its ramp, shared by the locustfile and its runner.

Plain Python with no Locust import: the runner (loadtest.py) and the unit tests
import it without gevent's monkeypatching, and the runner needs the same
durations as the shape to bound how long Locust may run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    flag: str
    env: str
    default: Any
    help: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


# The user classes in the locustfile, by the weight option that sets each one's share.
WEIGHTS = {
    "ShortTextUser": Option("--weight-short", "LOADTEST_WEIGHT_SHORT", 3, "share of short /v1/tts users"),
    "LongTextUser": Option("--weight-long", "LOADTEST_WEIGHT_LONG", 1, "share of long-text /v1/tts users"),
    "StreamUser": Option("--weight-stream", "LOADTEST_WEIGHT_STREAM", 2, "share of /v1/tts/stream users"),
    "OpenAISpeechUser": Option("--weight-openai", "LOADTEST_WEIGHT_OPENAI", 2, "share of /v1/audio/speech users"),
    "JobUser": Option("--weight-job", "LOADTEST_WEIGHT_JOB", 1, "share of async-job users"),
    "CloneUser": Option("--weight-clone", "LOADTEST_WEIGHT_CLONE", 1, "share of clone-then-speak users"),
}

SHAPE = (
    Option("--peak-users", "LOADTEST_USERS", 6, "users at the peak, shared out by the weights"),
    Option("--ramp-up", "LOADTEST_RAMP_UP_S", 10.0, "seconds from 1 user to the peak"),
    Option("--hold", "LOADTEST_HOLD_S", 40.0, "seconds at the peak"),
    Option("--ramp-down", "LOADTEST_RAMP_DOWN_S", 10.0, "seconds from the peak back to 1 user"),
    Option(
        "--each",
        "LOADTEST_EACH",
        0,
        "if > 0: exactly this many users of every class (Locust's fixed_count), instead of "
        "--peak-users and the weights",
    ),
)

TRAFFIC = (
    Option(
        "--long-chars",
        "LOADTEST_LONG_CHARS",
        3000,
        "characters of each long text; the service refuses more than its max_text_chars (13,000)",
    ),
    Option("--format", "LOADTEST_FORMAT", "mp3", "audio format asked for: wav, mp3, opus, flac or pcm"),
    Option("--voice", "LOADTEST_VOICE", "", "voice id to speak in; empty: the service's default voice"),
    Option("--wait-min", "LOADTEST_WAIT_MIN_S", 1.0, "shortest pause of a user between two tasks, seconds"),
    Option("--wait-max", "LOADTEST_WAIT_MAX_S", 3.0, "longest pause of a user between two tasks, seconds"),
    Option("--job-poll", "LOADTEST_JOB_POLL_S", 0.5, "seconds between two polls of a job's status"),
    Option("--job-timeout", "LOADTEST_JOB_TIMEOUT_S", 300.0, "seconds a job may take before it counts as failed"),
    Option("--request-timeout", "LOADTEST_REQUEST_TIMEOUT_S", 300.0, "seconds one HTTP request may take"),
)

OPTIONS = (*SHAPE, *WEIGHTS.values(), *TRAFFIC)


def add_arguments(parser, group_title: str = "voicegraph load test") -> None:
    """Add every option to an argparse (or Locust's configargparse) parser. An
    environment variable sets an option's default, so `make loadtest` passes
    them on without the runner knowing each; a flag still wins over it."""
    group = parser.add_argument_group(group_title)
    for option in OPTIONS:
        kind = type(option.default)
        group.add_argument(
            option.flag,
            type=kind,
            # argparse applies `type` to a string default, so the variable is parsed like the flag.
            default=os.environ.get(option.env, option.default),
            help=f"{option.help} (env {option.env}, default {option.default})",
        )


def peak_users(options) -> int:
    return options.each * len(WEIGHTS) if options.each > 0 else options.peak_users


def shape_total_s(options) -> float:
    return options.ramp_up + options.hold + options.ramp_down


def users_at(elapsed_s: float, peak: int, ramp_up_s: float, hold_s: float, ramp_down_s: float) -> int | None:
    """Users the ramp asks for after elapsed_s seconds; None once it is over.

    At least one user throughout, so a ramp starts at once and the last
    requests of a ramp-down still run."""
    if elapsed_s < ramp_up_s:
        return max(1, math.ceil(peak * elapsed_s / ramp_up_s))
    elapsed_s -= ramp_up_s
    if elapsed_s < hold_s:
        return peak
    elapsed_s -= hold_s
    if elapsed_s < ramp_down_s:
        return max(1, math.ceil(peak * (1 - elapsed_s / ramp_down_s)))
    return None
