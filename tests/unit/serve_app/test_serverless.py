"""The serverless-handler protocol: input → job requests, refusals, run state."""

import asyncio
from dataclasses import replace

import pytest
from pydantic import ValidationError

from serve_app.serverless.protocol import RunRequest
from serve_app.serverless.serving import ServerlessServing, run_state, run_times_ms
from voicegraph.core.settings import Settings
from voicegraph.jobs.records import JobRecord, RunRecord, RunSection


def requests_of(input_: dict) -> list[tuple]:
    run = RunRequest(input=input_)
    return [(section_id, job.model_dump(exclude_none=True)) for section_id, job in run.input.job_requests()]


@pytest.mark.parametrize(
    ("input_", "expected"),
    [
        (
            {"text": "Hi.", "voice_id": "bright", "language": "en-us"},
            [(None, {"text": "Hi.", "voice": "bright", "language": "en-us", "speed": 1.0})],
        ),
        (
            {"text": "Hi.", "voice_url": "https://x/a.wav", "story_id": "s", "callback_url": "https://x/api/tts/callback"},
            [(None, {"text": "Hi.", "voice_url": "https://x/a.wav", "speed": 1.0, "story_id": "s",
                     "callback_url": "https://x/api/tts/callback"})],
        ),
        # Sections inherit the input's options…
        (
            {"sections": [{"id": "a", "text": "One."}, {"id": "b", "text": "Two."}], "voice_id": "deep", "speed": 1.3},
            [("a", {"text": "One.", "voice": "deep", "speed": 1.3}), ("b", {"text": "Two.", "voice": "deep", "speed": 1.3})],
        ),
        # …and override them; a section's own voice replaces the input's of either kind.
        (
            {"sections": [{"id": "a", "text": "One.", "voice_id": "bright", "format": "mp3"}], "voice_url": "https://x/a.wav", "format": "wav"},
            [("a", {"text": "One.", "voice": "bright", "format": "mp3", "speed": 1.0})],
        ),
        (
            {"sections": [{"id": "a", "text": "One.", "voice_url": "https://x/b.wav"}], "voice_id": "deep"},
            [("a", {"text": "One.", "voice_url": "https://x/b.wav", "speed": 1.0})],
        ),
        (
            {"sections": [{"id": "a", "text": "One.", "language": "de"}], "language": "en-us", "normalize": False,
             "sampling": {"temperature": 0.5}, "metadata": {"k": 1}},
            [("a", {"text": "One.", "language": "de", "normalize": False, "speed": 1.0,
                    "sampling": {"temperature": 0.5}, "metadata": {"k": 1}})],
        ),
    ],
)
def test_input_becomes_one_job_request_per_section(input_, expected):
    assert requests_of(input_) == expected


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"input": {}}, "exactly one of them"),
        ({"input": {"text": "a", "sections": [{"id": "a", "text": "b"}]}}, "exactly one of them"),
        ({"input": {"sections": []}}, "at least one"),
        ({"input": {"sections": [{"id": "x", "text": "a"}, {"id": "y", "text": "b"}, {"id": "x", "text": "c"}]}}, "repeated: x"),
        ({"input": {"sections": [{"id": "", "text": "a"}]}}, "at least 1 character"),
        ({"input": {"sections": [{"id": "a", "text": "b"}], "error_callback_url": "https://x/e"}}, "simple mode"),
        ({"input": {"text": "a"}, "webhook": "https://x/hook"}, "webhook is not supported"),
        ({"input": {"text": "a", "voice": "bright"}}, "input.voice\n  Extra inputs"),
        ({"input": {"text": "a", "delivery": "fax"}}, "input.delivery\n  Input should be"),
        ({"input": {"text": "a"}, "policy": {}}, "policy\n  Extra inputs"),
    ],
)
def test_bad_input_is_refused_with_a_reason(body, words):
    with pytest.raises(ValidationError) as raised:
        RunRequest(**body)
    assert words in str(raised.value)


def job(status: str, **times) -> JobRecord:
    fields = dict.fromkeys(JobRecord.__dataclass_fields__)
    return JobRecord(**{**fields, "id": f"job_{status}", "status": status, "request": {}, "callbacks": (), **times})


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["queued"], "IN_QUEUE"),
        (["queued", "queued"], "IN_QUEUE"),
        (["running"], "IN_PROGRESS"),
        (["succeeded", "queued"], "IN_PROGRESS"),
        (["failed", "running"], "IN_PROGRESS"),  # finished only when every section is
        (["succeeded"], "COMPLETED"),
        (["succeeded", "succeeded"], "COMPLETED"),
        (["failed"], "FAILED"),
        (["succeeded", "failed", "succeeded"], "FAILED"),
        (["cancelled"], "CANCELLED"),
        (["succeeded", "cancelled", "failed"], "CANCELLED"),  # the caller stopped it: what failed is moot
        (["cancelled", "running"], "IN_PROGRESS"),
    ],
)
def test_run_state(states, expected):
    assert run_state([job(state) for state in states]) == expected


class QueuedJobs:
    """JobsServing's run methods, with no runner: the run stays queued."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.polls = 0
        self.run = RunRecord("run_1", "simple", "base64", 0.0, (RunSection(None, job("queued")),))

    async def submit_run(self, mode, delivery, requests):
        return self.run

    async def run_status(self, run_id):
        self.polls += 1
        return replace(self.run)


def test_runsync_answers_in_progress_after_its_wait():
    jobs = QueuedJobs(Settings(serverless={"runsync_wait_s": 0.3}))
    run = asyncio.run(ServerlessServing(jobs).run_sync(RunRequest(input={"text": "Hi."})))
    assert run_state([s.job for s in run.sections]) == "IN_QUEUE"
    assert jobs.polls >= 2  # it kept looking until the wait ran out


@pytest.mark.parametrize(
    ("jobs", "expected"),
    [
        ([job("queued")], (None, None)),  # nothing started: the platform leaves both out
        ([job("running", started_at=102.5)], (2500, 7500)),  # running: until now (110)
        ([job("succeeded", started_at=101, finished_at=104), job("queued")], (1000, 9000)),
        ([job("succeeded", started_at=101, finished_at=104), job("failed", started_at=104, finished_at=106.25)], (1000, 5250)),
    ],
)
def test_delay_and_execution_times_in_milliseconds(jobs, expected):
    run = RunRecord("run_1", "batch", "url", 100.0, tuple(RunSection(str(i), j) for i, j in enumerate(jobs)))
    assert run_times_ms(run, now=110.0) == expected
