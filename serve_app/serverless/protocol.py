"""Schemas of the serverless-handler routes (`/run`, `/runsync`, `/status/{id}`).

They follow the serverless job API the old TTS handler sat behind, so a
client switches by changing its base URL: `{"input": {...}}` in, `{id,
status, output}` out, with the handler's version fields in `output`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve_app.jobs.protocol import JobRequest
from serve_app.tts.protocol import SamplingParams
from voicegraph.text.captions import CaptionFormat

RunState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED"]


class VoiceOptions(BaseModel):
    """How to speak: given for the whole input, and overridable per section."""

    model_config = ConfigDict(extra="forbid")

    voice_id: str | None = Field(None, description="A preset or cloned voice id (GET /v1/voices).")
    voice_url: str | None = Field(None, description="http(s) URL of a reference recording to clone.")
    language: str | None = None
    format: str | None = Field(None, description="Audio format: wav, mp3, opus, aac, flac or pcm.")
    speed: float | None = None
    normalize: bool | None = None


class SectionInput(VoiceOptions):
    id: str = Field(min_length=1, max_length=256, description="Your id; the output echoes it.")
    text: str


class RunInput(VoiceOptions):
    text: str | None = Field(None, description="Simple mode: one text, one audio.")
    sections: list[SectionInput] | None = Field(
        None, description="Batch mode: one audio per section, in the same order."
    )
    sampling: SamplingParams | None = None
    captions: CaptionFormat | None = Field(
        None, description="Sentence-level timestamps of each audio: json, vtt or srt."
    )
    delivery: Literal["base64", "url"] | None = Field(
        None,
        description="base64: the audio inline in output; url: where it is stored. Default: the "
        "service's serverless.delivery. Audio over serverless.max_base64_bytes always comes as url.",
    )
    # Simple mode only: a batch's callbacks would arrive once per section.
    callback_url: str | None = None
    error_callback_url: str | None = None
    story_id: str | None = None
    user_id: str | None = None
    metadata: dict[str, Any] | None = None

    def mode(self) -> Literal["simple", "batch"]:
        return "batch" if self.sections is not None else "simple"

    def characters(self) -> int:
        """Text in the whole run, counted against the caller's rate limit."""
        if self.sections is None:
            return len(self.text or "")
        return sum(len(section.text) for section in self.sections)

    def job_requests(self) -> list[tuple[str | None, JobRequest]]:
        """Each section as an async job's request; simple mode is one unnamed section."""
        shared = self.model_dump(
            include={"sampling", "captions", "callback_url", "error_callback_url", "story_id", "user_id", "metadata"},
            exclude_none=True,
        )
        if self.sections is None:
            return [(None, _job_request(self, self.text, shared))]
        return [
            (section.id, _job_request(_overridden(self, section), section.text, shared))
            for section in self.sections
        ]


def _overridden(defaults: VoiceOptions, section: VoiceOptions) -> VoiceOptions:
    options = defaults.model_dump(include=set(VoiceOptions.model_fields))
    given = section.model_dump(include=set(VoiceOptions.model_fields), exclude_none=True)
    if "voice_id" in given or "voice_url" in given:
        # A section naming its own voice replaces the input's, whichever kind that was.
        options.update(voice_id=None, voice_url=None)
    return VoiceOptions(**{**options, **given})


def _job_request(options: VoiceOptions, text: str, shared: dict[str, Any]) -> JobRequest:
    speech = options.model_dump(include=set(VoiceOptions.model_fields), exclude_none=True)
    if "voice_id" in speech:
        speech["voice"] = speech.pop("voice_id")
    return JobRequest(text=text, **speech, **shared)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: RunInput

    @model_validator(mode="before")
    @classmethod
    def _no_webhook(cls, data: Any) -> Any:
        if isinstance(data, dict) and "webhook" in data:
            raise ValueError(
                "webhook is not supported here: put callback_url (and error_callback_url) in input; "
                "those callbacks are signed and retried until delivered (docs/api/native.md: Callbacks)"
            )
        return data

    @model_validator(mode="after")
    def _one_mode(self) -> RunRequest:
        given = self.input
        if (given.text is None) == (given.sections is None):
            raise ValueError(
                "send input.text (simple mode) or input.sections (batch mode: a list of {id, text}), "
                "exactly one of them"
            )
        if given.sections is not None:
            if not given.sections:
                raise ValueError("input.sections is empty; send at least one {id, text}")
            ids = [section.id for section in given.sections]
            repeated = sorted({section_id for section_id in ids if ids.count(section_id) > 1})
            if repeated:
                raise ValueError(f"section ids must be unique; repeated: {', '.join(repeated)}")
            if given.callback_url or given.error_callback_url:
                raise ValueError(
                    "callbacks are for simple mode; in batch mode poll /status/{id}, or submit each "
                    "section as its own /run with a callback_url"
                )
        return self


class AudioOutput(BaseModel):
    job_id: str
    audio_base64: str | None = Field(None, description="With delivery base64.")
    audio_url: str = Field(description="Where the file is stored: the bucket's URL, or a file:// URL locally.")
    download_url: str = Field(description="The file through this service (GET /v1/tts/jobs/{id}/audio).")
    audio_path: str = Field(description="Key in the storage layout, e.g. tts_generations/….mp3")
    format: str
    content_type: str
    size_bytes: int
    duration_s: float
    sample_rate: int
    captions: str | list[dict[str, Any]] | None = None


class HandlerVersion(BaseModel):
    """The fields the old handler put in every output, so clients keep reading them."""

    handler_version: str
    git_sha: str
    build_time: str
    torch_version: str | None
    delivery: Literal["base64", "url"]
    delivery_note: str | None = Field(
        None, description="Why the audio came as a url although base64 was asked for."
    )


class SimpleOutput(HandlerVersion, AudioOutput):
    pass


class SectionOutput(BaseModel):
    id: str
    status: Literal["succeeded", "failed", "cancelled"]
    audio: AudioOutput | None
    error: str | None = None
    error_code: str | None = None


class BatchOutput(HandlerVersion):
    sections: list[SectionOutput]


class RunStatus(BaseModel):
    id: str
    status: RunState
    output: SimpleOutput | BatchOutput | None = Field(
        None, description="Once finished: simple mode's audio, or every section in order."
    )
    error: str | None = Field(None, description="FAILED: what went wrong (batch: the first failed section).")
    error_code: str | None = None
    # The platform's names: milliseconds in the queue, and from the first start to the end (or now).
    delayTime: int | None = None
    executionTime: int | None = None


class StreamItem(BaseModel):
    output: SimpleOutput | SectionOutput


class RunStream(BaseModel):
    """What `stream/{id}` answers: sections finished since the last call, in order."""

    id: str
    status: RunState
    stream: list[StreamItem]


class JobCounts(BaseModel):
    completed: int
    failed: int
    inProgress: int
    inQueue: int
    retried: int


class WorkerCounts(BaseModel):
    idle: int
    running: int


class EndpointHealth(BaseModel):
    """`health`: jobs by state, and the ingress replicas that run them (running: with jobs under way)."""

    jobs: JobCounts
    workers: WorkerCounts


class PurgedQueue(BaseModel):
    removed: int
    status: Literal["completed"] = "completed"
