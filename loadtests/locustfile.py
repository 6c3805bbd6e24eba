"""Locust load test of the running service: the real mix of its routes.

    .venv/bin/locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 --csv out/locust
    make loadtest                                  # the same, bounded, with a summary (loadtest.py)
    .venv/bin/locust -f loadtests/locustfile.py --help    # every option, with its variable

User classes (docs/performance.md: "Load testing (Locust)"): short and long texts on
/v1/tts, streams with their time to first audio byte (entry TTFA), the
OpenAI-compatible route, async jobs polled to the end (entry JOB), and
clone-then-speak, which idles when /health says the engine cannot clone.
A ramp (RampHoldShape) sets the number of users over time.

Every text differs, since the response cache answers a repeated one without
synthesis. Requests are named by route, so ids never become stats entries.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path

import gevent
import requests

# Locust imports a locustfile with its folder first on sys.path, from any
# working directory: load_texts and locust_options are found beside it.
from load_texts import long_text, short_text
from locust import HttpUser, LoadTestShape, between, events, task
from locust.exception import CatchResponseError
from locust.stats import CSV_STATS_INTERVAL_SEC
from locust_options import WEIGHTS, add_arguments, peak_users, users_at

log = logging.getLogger("voicegraph.loadtest")

# Read once per clone user and cloned: five to ten seconds of speech on every
# engine, inside the 3-30 s that cloning accepts.
REFERENCE_TEXT = (
    "This is a reference recording of a speaking voice. I read a few plain sentences, "
    "slowly and clearly, so that the service can learn how I sound and speak like me."
)

# Filled by probe_service at test start: what /health says about the service.
SERVICE: dict = {}
# User class name -> why it made no requests, for the summary (see write_run_notes).
SKIPPED: dict[str, str] = {}


@events.init_command_line_parser.add_listener
def add_options(parser):
    add_arguments(parser)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("VOICEGRAPH_API_KEY", ""),
        is_secret=True,
        help="sent as 'Authorization: Bearer <key>' on every request (env VOICEGRAPH_API_KEY)",
    )


@events.init.add_listener
def apply_options(environment, **_):
    options = environment.parsed_options
    if options is None:  # Locust used as a library, without a command line
        return
    for user_class in environment.user_classes:
        weight = WEIGHTS.get(user_class.__name__)
        if weight is not None:
            user_class.weight = getattr(options, weight.dest)
        if options.each > 0:
            user_class.fixed_count = options.each
        user_class.wait_time = between(options.wait_min, options.wait_max)


def auth_headers(options) -> dict[str, str]:
    return {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}


@events.test_start.add_listener
def probe_service(environment, **_):
    """Ask /health once, outside the stats, what the engine is and whether it clones."""
    SERVICE.clear()
    SKIPPED.clear()
    try:
        response = requests.get(
            f"{environment.host}/health", headers=auth_headers(environment.parsed_options), timeout=30
        )
        response.raise_for_status()
        SERVICE.update(response.json())
    except (requests.RequestException, ValueError) as exc:
        # The users still run: their requests then fail where the stats show it.
        log.warning("GET /health failed (%s); assuming the engine can clone", exc)


@events.test_stop.add_listener
def write_run_notes(environment, **_):
    """What the CSVs cannot say (skipped classes, the engine) beside them, for the summary."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix:
        return
    notes = {
        "engine": SERVICE.get("engine"),
        "model": SERVICE.get("model"),
        "can_clone": SERVICE.get("can_clone"),
        "skipped": SKIPPED,
    }
    Path(f"{prefix}_voicegraph.json").write_text(json.dumps(notes, indent=2) + "\n")
    # Locust rewrites its CSVs once a CSV_STATS_INTERVAL_SEC and not at exit, so
    # the requests of the last second would be missing: give it one more turn.
    gevent.sleep(1.5 * CSV_STATS_INTERVAL_SEC)


def error_of(response) -> str:
    """A failure's label: status and the service's error code, never an id, so
    Locust groups equal failures into one row."""
    if getattr(response, "error", None) is not None:
        return f"request failed: {type(response.error).__name__}"
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = response.text[:80]
    return f"HTTP {response.status_code}: {code}"


def check_audio(response) -> str | None:
    """Why an audio answer is wrong, or None."""
    if response.status_code != 200:
        return error_of(response)
    if not response.content:
        return "200 with an empty body"
    if not response.headers.get("content-type", "").startswith("audio/"):
        return f"200 with content-type {response.headers.get('content-type')!r}"
    return None


class VoicegraphUser(HttpUser):
    abstract = True
    wait_time = between(1, 3)

    def on_start(self):
        self.options = self.environment.parsed_options
        self.client.headers.update(auth_headers(self.options))

    def speech_body(self, text: str, **extra) -> dict:
        body = {"text": text, "format": self.options.format, **extra}
        if self.options.voice and "voice" not in body:
            body["voice"] = self.options.voice
        return body

    def call(self, method: str, path: str, name: str | None = None, **kwargs):
        """A request to check in a with-block, bounded in time, named by its route (`name`
        where the path holds an id or one route serves several entries)."""
        return self.client.request(
            method, path, name=name or path, catch_response=True, timeout=self.options.request_timeout, **kwargs
        )

    def post_audio(self, name: str, body: dict) -> bytes | None:
        """POST /v1/tts, checked: audio with a positive X-Audio-Duration."""
        with self.call("POST", "/v1/tts", name, json=body) as response:
            problem = check_audio(response)
            if problem is None and not float(response.headers.get("x-audio-duration") or 0) > 0:
                problem = "200 without a positive X-Audio-Duration"
            if problem:
                response.failure(problem)
                return None
            return response.content

    def report(self, request_type: str, name: str, started: float, exception: Exception | None = None):
        """An entry of our own (TTFA, JOB) in Locust's stats, timed from `started`."""
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )


class ShortTextUser(VoicegraphUser):
    """One or two sentences on POST /v1/tts: the common request."""

    @task
    def speak(self):
        self.post_audio("/v1/tts (short)", self.speech_body(short_text()))


class LongTextUser(VoicegraphUser):
    """--long-chars of text on POST /v1/tts: fanned out over every Synthesizer replica."""

    @task
    def speak_long(self):
        self.post_audio("/v1/tts (long)", self.speech_body(long_text(self.options.long_chars)))


class StreamUser(VoicegraphUser):
    """POST /v1/tts/stream read to the end. Its entry times the whole stream; a
    TTFA entry times the first audio byte, what a listener waits for."""

    @task
    def stream(self):
        started = time.perf_counter()
        with self.call("POST", "/v1/tts/stream", json=self.speech_body(short_text()), stream=True) as response:
            if response.status_code != 200:
                response.failure(error_of(response))
                return
            received = 0
            try:
                for piece in response.iter_content(chunk_size=None):
                    if piece and not received:
                        self.report("TTFA", "/v1/tts/stream", started)
                    received += len(piece)
            except requests.RequestException as exc:
                # Locust re-raises an exception from inside the block unreported; a stream cut short is a failure.
                response.failure(f"stream cut short: {type(exc).__name__}")
                return
            # Locust timed the headers and read no body (stream=True): report the whole stream instead.
            response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            response.request_meta["response_length"] = received
            if not received:
                response.failure("stream ended without audio")


class OpenAISpeechUser(VoicegraphUser):
    """POST /v1/audio/speech as OpenAI's clients send it."""

    @task
    def speech(self):
        voice = self.options.voice or SERVICE.get("default_voice") or "default"
        body = {"model": "tts-1", "input": short_text(), "voice": voice, "response_format": self.options.format}
        with self.call("POST", "/v1/audio/speech", json=body) as response:
            if problem := check_audio(response):
                response.failure(problem)


class JobUser(VoicegraphUser):
    """An async job: submit, poll until it ends (entry JOB: submit to succeeded), fetch the audio."""

    job_entry = "/v1/tts/jobs (submit to succeeded)"

    @task
    def job(self):
        started = time.perf_counter()
        with self.call("POST", "/v1/tts/jobs", json=self.speech_body(short_text())) as response:
            if response.status_code != 202:
                response.failure(error_of(response))
                return
            job_id = response.json()["job_id"]
        status = self.wait_for(job_id, started)
        if status != "succeeded":
            self.report("JOB", self.job_entry, started, CatchResponseError(status))
            return
        self.report("JOB", self.job_entry, started)
        with self.call("GET", f"/v1/tts/jobs/{job_id}/audio", "/v1/tts/jobs/[id]/audio") as response:
            if problem := check_audio(response):
                response.failure(problem)

    def wait_for(self, job_id: str, started: float) -> str:
        """'succeeded', or why the job did not get there (without its id)."""
        while time.perf_counter() - started < self.options.job_timeout:
            time.sleep(self.options.job_poll)  # gevent's sleep: Locust patched time
            with self.call("GET", f"/v1/tts/jobs/{job_id}", "/v1/tts/jobs/[id]") as response:
                if response.status_code != 200:
                    response.failure(error_of(response))
                    return f"status poll failed: {error_of(response)}"
                record = response.json()
            if record["status"] == "succeeded":
                return "succeeded"
            if record["status"] not in ("queued", "running"):  # failed, cancelled
                return f"job {record['status']}: {(record.get('error') or {}).get('code')}"
        return f"not finished after {self.options.job_timeout:.0f} s"


class CloneUser(VoicegraphUser):
    """Clone a voice from a recording, speak with it, delete it. The recording is
    the service's own speech, fetched at start, so none is kept in the repo.
    Where /health says the engine cannot clone, the user makes no requests."""

    reference: bytes | None = None

    def on_start(self):
        super().on_start()
        if SERVICE.get("can_clone") is False:
            SKIPPED[type(self).__name__] = f"engine {SERVICE.get('engine')} cannot clone (/health can_clone false)"
            return
        self.fetch_reference()

    def fetch_reference(self):
        self.reference = self.post_audio("/v1/tts (reference clip)", {"text": REFERENCE_TEXT, "format": "wav"})

    @task
    def clone_and_speak(self):
        if type(self).__name__ in SKIPPED:
            return
        if self.reference is None:  # its fetch failed (and counted): try again
            self.fetch_reference()
            return
        with self.call(
            "POST",
            "/v1/voices",
            files={"file": ("reference.wav", self.reference, "audio/wav")},
            data={"name": f"loadtest {uuid.uuid4().hex[:12]}"},
        ) as response:
            if response.status_code != 201:
                response.failure(error_of(response))
                return
            voice_id = response.json()["id"]
        try:
            self.post_audio("/v1/tts (cloned voice)", self.speech_body(short_text(), voice=voice_id))
        finally:
            # Also when Locust stops the user mid-task: no clone is left behind.
            with self.call("DELETE", f"/v1/voices/{voice_id}", "/v1/voices/[id]") as response:
                if response.status_code != 200:
                    response.failure(error_of(response))


class RampHoldShape(LoadTestShape):
    """Ramp up to the peak, hold it, ramp down, stop (--ramp-up, --hold, --ramp-down)."""

    def tick(self):
        options = self.runner.environment.parsed_options
        peak = peak_users(options)
        users = users_at(self.get_run_time(), peak, options.ramp_up, options.hold, options.ramp_down)
        # The ramp moves a user or so a second; the spawn rate only has to keep up with it.
        return None if users is None else (users, peak)
