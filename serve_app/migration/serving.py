"""Serverless-handler runs on top of async jobs.

A run is one job per section (simple mode: one), recorded together, run by
the same leased, retried runners as `/v1/tts/jobs`; this layer only maps
the input in and the jobs' states and audio out.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from serve_app.jobs.serving import JobsServing
from serve_app.migration.protocol import (
    AudioOutput,
    BatchOutput,
    HandlerVersion,
    RunRequest,
    RunState,
    RunStatus,
    SectionOutput,
    SimpleOutput,
)
from serve_app.version import version_info
from voicegraph.core.errors import InvalidRequestError
from voicegraph.jobs.store import JobRecord, RunRecord

# Job id → the URL this service serves its audio at.
AudioLink = Callable[[str], str]


def run_state(jobs: list[JobRecord]) -> RunState:
    """Finished only when every section is: a terminal state never changes."""
    states = {job.status for job in jobs}
    if states <= {"queued"}:
        return "IN_QUEUE"
    if not states <= {"succeeded", "failed"}:
        return "IN_PROGRESS"
    return "FAILED" if "failed" in states else "COMPLETED"


class MigrationServing:
    def __init__(self, jobs: JobsServing):
        self.jobs = jobs
        self.settings = jobs.settings

    async def run(self, body: RunRequest) -> RunRecord:
        given = body.input
        limits = self.settings.migration
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
        deadline = loop.time() + self.settings.migration.runsync_wait_s
        delay = 0.05
        while run_state([section.job for section in run.sections]) not in ("COMPLETED", "FAILED"):
            if loop.time() >= deadline:
                break
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
            delay = min(delay * 1.5, 0.5)
            run = await self.jobs.run_status(run.id)
        return run

    async def status(self, run_id: str) -> RunRecord:
        return await self.jobs.run_status(run_id)

    async def describe(self, run: RunRecord, audio_link: AudioLink) -> RunStatus:
        jobs = [section.job for section in run.sections]
        state = run_state(jobs)
        failed = next((job for job in jobs if job.status == "failed"), None)
        error = error_code = None
        if state == "FAILED":
            error_code = failed.error_code
            error = failed.error_message
            if run.mode == "batch":
                section_id = run.sections[jobs.index(failed)].id
                error = f"section {section_id!r}: {error}"
        if state not in ("COMPLETED", "FAILED") or (state == "FAILED" and run.mode == "simple"):
            return RunStatus(id=run.id, status=state, error=error, error_code=error_code)
        version = await self._handler_version(run)
        inline = version.delivery == "base64"
        audios = [
            await self._audio(job, audio_link, inline) if job.result is not None else None
            for job in jobs
        ]
        if run.mode == "simple":
            output = SimpleOutput(**version.model_dump(), **audios[0].model_dump())
        else:
            output = BatchOutput(
                **version.model_dump(),
                sections=[
                    SectionOutput(
                        id=section.id,
                        status=section.job.status,
                        audio=audio,
                        error=section.job.error_message,
                        error_code=section.job.error_code,
                    )
                    for section, audio in zip(run.sections, audios, strict=True)
                ],
            )
        return RunStatus(id=run.id, status=state, output=output, error=error, error_code=error_code)

    async def _handler_version(self, run: RunRecord) -> HandlerVersion:
        info = version_info(self.settings.git_sha, self.settings.build_time)
        delivery, note = run.delivery, None
        size = sum(section.job.result.size_bytes for section in run.sections if section.job.result)
        limit = self.settings.migration.max_base64_bytes
        if delivery == "base64" and size > limit:
            delivery = "url"
            note = (
                f"the audio is {size} bytes, over the {limit}-byte limit for base64 "
                "(migration.max_base64_bytes); download it from audio_url or download_url"
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
