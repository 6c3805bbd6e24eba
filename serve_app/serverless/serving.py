"""Serverless-handler runs on top of async jobs.

A run is one job per section (simple mode: one), recorded together, run by
the same leased, retried runners as `/v1/tts/jobs`; this layer only maps
the input in and the jobs' states and audio out.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable

from serve_app.jobs.serving import JobsServing
from serve_app.serverless.protocol import (
    AudioOutput,
    BatchOutput,
    EndpointHealth,
    HandlerVersion,
    JobCounts,
    PurgedQueue,
    RunRequest,
    RunState,
    RunStatus,
    RunStream,
    SectionOutput,
    SimpleOutput,
    StreamItem,
    WorkerCounts,
)
from serve_app.version import version_info
from voicegraph.core.errors import InvalidRequestError
from voicegraph.jobs.records import FINISHED, JobRecord, RunRecord, RunSection

# Job id → the URL this service serves its audio at.
AudioLink = Callable[[str], str]


FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED")


def run_state(jobs: list[JobRecord]) -> RunState:
    """Finished only when every section is: a terminal state never changes."""
    states = {job.status for job in jobs}
    if states <= {"queued"}:
        return "IN_QUEUE"
    if not states <= FINISHED:
        return "IN_PROGRESS"
    if "cancelled" in states:
        return "CANCELLED"
    return "FAILED" if "failed" in states else "COMPLETED"


def run_times_ms(run: RunRecord, now: float) -> tuple[int | None, int | None]:
    """The platform's delayTime (queued until a runner first took a section)
    and executionTime (from then to the last section's end, or to now)."""
    jobs = [section.job for section in run.sections]
    starts = [job.started_at for job in jobs if job.started_at is not None]
    if not starts:
        return None, None
    finished = all(job.finished_at is not None for job in jobs)
    end = max(job.finished_at for job in jobs) if finished else now
    return round((min(starts) - run.created_at) * 1000), round((end - min(starts)) * 1000)


def _section_output(section: RunSection, audio: AudioOutput | None) -> SectionOutput:
    return SectionOutput(
        id=section.id,
        status=section.job.status,
        audio=audio,
        error=section.job.error_message,
        error_code=section.job.error_code,
    )


class ServerlessServing:
    def __init__(self, jobs: JobsServing):
        self.jobs = jobs
        self.settings = jobs.settings

    async def run(self, body: RunRequest) -> RunRecord:
        given = body.input
        limits = self.settings.serverless
        if given.sections is not None and len(given.sections) > limits.max_sections:
            raise InvalidRequestError(
                f"input.sections has {len(given.sections)} sections; the limit is {limits.max_sections}. "
                "Split the batch into several runs"
            )
        delivery = given.delivery or limits.delivery
        return await self.jobs.submit_run(given.mode(), delivery, given.job_requests())

    async def run_sync(self, body: RunRequest) -> RunRecord:
        """The run once finished, or as it stands after `runsync_wait_s`."""
        run = await self.run(body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.serverless.runsync_wait_s
        delay = 0.05
        while run_state([section.job for section in run.sections]) not in FINAL_STATES:
            if loop.time() >= deadline:
                break
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
            delay = min(delay * 1.5, 0.5)
            run = await self.jobs.run_status(run.id)
        return run

    async def status(self, run_id: str) -> RunRecord:
        return await self.jobs.run_status(run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        return await self.jobs.cancel_run(run_id)

    async def stream(self, run_id: str, audio_link: AudioLink) -> RunStream:
        """Sections finished since the last call, each handed out once: what
        the platform's stream route gives, and what its SDK's Job.stream() reads."""
        run, start = await self.jobs.advance_stream(run_id)
        items = []
        if run.streamed > start:
            version = await self._handler_version(run)
            for section in run.sections[start : run.streamed]:
                audio = await self._section_audio(section.job, audio_link, version)
                if run.mode == "batch":
                    items.append(StreamItem(output=_section_output(section, audio)))
                elif audio is not None:
                    items.append(StreamItem(output=SimpleOutput(**version.model_dump(), **audio.model_dump())))
        return RunStream(id=run.id, status=run_state([s.job for s in run.sections]), stream=items)

    async def health(self, ingress_replicas: int) -> EndpointHealth:
        counts = await self.jobs.counts()
        running = min(counts.get("runners", 0), ingress_replicas)
        return EndpointHealth(
            jobs=JobCounts(
                completed=counts.get("succeeded", 0),
                failed=counts.get("failed", 0) + counts.get("cancelled", 0),
                inProgress=counts.get("running", 0),
                inQueue=counts.get("queued", 0),
                retried=counts.get("retried", 0),
            ),
            workers=WorkerCounts(idle=ingress_replicas - running, running=running),
        )

    async def purge_queue(self) -> PurgedQueue:
        return PurgedQueue(removed=await self.jobs.purge_queue())

    async def describe(self, run: RunRecord, audio_link: AudioLink) -> RunStatus:
        jobs = [section.job for section in run.sections]
        state = run_state(jobs)
        delay_ms, execution_ms = run_times_ms(run, time.time())
        failed = next((job for job in jobs if job.status == "failed"), None)
        error = error_code = None
        if state == "FAILED":
            error_code = failed.error_code
            error = failed.error_message
            if run.mode == "batch":
                section_id = run.sections[jobs.index(failed)].id
                error = f"section {section_id!r}: {error}"
        status = RunStatus(
            id=run.id, status=state, error=error, error_code=error_code, delayTime=delay_ms, executionTime=execution_ms
        )
        # Output once finished: simple mode's audio, or every section of a batch as it ended.
        if state not in FINAL_STATES or (run.mode == "simple" and state != "COMPLETED"):
            return status
        version = await self._handler_version(run)
        audios = [await self._section_audio(job, audio_link, version) for job in jobs]
        if run.mode == "simple":
            output = SimpleOutput(**version.model_dump(), **audios[0].model_dump())
        else:
            output = BatchOutput(
                **version.model_dump(),
                sections=[_section_output(section, audio) for section, audio in zip(run.sections, audios, strict=True)],
            )
        return status.model_copy(update={"output": output})

    async def _section_audio(
        self, job: JobRecord, audio_link: AudioLink, version: HandlerVersion
    ) -> AudioOutput | None:
        if job.result is None:
            return None
        return await self._audio(job, audio_link, version.delivery == "base64")

    async def _handler_version(self, run: RunRecord) -> HandlerVersion:
        info = version_info(self.settings.git_sha, self.settings.build_time)
        delivery, note = run.delivery, None
        size = sum(section.job.result.size_bytes for section in run.sections if section.job.result)
        limit = self.settings.serverless.max_base64_bytes
        if delivery == "base64" and size > limit:
            delivery = "url"
            note = (
                f"the audio is {size} bytes, over the {limit}-byte limit for base64 "
                "(serverless.max_base64_bytes); download it from audio_url or download_url"
            )
        return HandlerVersion(
            handler_version=info["app_version"],
            git_sha=info["git_sha"],
            build_time=info["build_time"],
            torch_version=info["torch_version"],
            delivery=delivery,
            delivery_note=note,
        )

    async def _audio(self, job: JobRecord, audio_link: AudioLink, inline: bool) -> AudioOutput:
        result = job.result
        data = await self.jobs.audio(result.path) if inline else None
        return AudioOutput(
            job_id=job.id,
            audio_base64=base64.b64encode(data).decode("ascii") if data is not None else None,
            audio_url=result.url,
            download_url=audio_link(job.id),
            audio_path=result.path,
            format=result.format,
            content_type=result.content_type,
            size_bytes=result.size_bytes,
            duration_s=result.duration_s,
            sample_rate=result.sample_rate,
            captions=result.captions,
        )
