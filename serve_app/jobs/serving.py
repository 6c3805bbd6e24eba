"""Async jobs: accept, report, cancel.

A job is validated in full when it is submitted (bad text, an unknown voice
or a refused callback URL is a 4xx then, not a failed job later), recorded by
the StorageActor, and run by serve_app.jobs.runner on whichever ingress
replica claims it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from serve_app.jobs.protocol import JobRequest
from serve_app.jobs.runner import JobRunner, call_storage
from serve_app.tts.protocol import SpeechParams
from serve_app.tts.serving import TTSServing
from voicegraph.core.errors import InvalidRequestError, UrlRefusedError, VoiceGraphError
from voicegraph.jobs.callbacks import error_callback_url
from voicegraph.jobs.records import AudioDelivery, JobRecord, NewJob, RunMode, RunRecord
from voicegraph.net.safe_fetch import AllowList, check_url


class JobsServing:
    def __init__(self, tts: TTSServing, storage, replica_name: str):
        self.tts = tts
        self.settings = tts.settings
        self._storage = storage
        self._allow = AllowList.parse(self.settings.outbound.allow)
        self.runner = JobRunner(tts, storage, replica_name)

    async def submit(self, request: JobRequest) -> JobRecord:
        record: JobRecord = await self._call_storage("create_job", await self._new_job(request))
        claimed = await self.runner.claim_now([record.id])
        return claimed[0] if claimed else record

    async def submit_run(
        self, mode: RunMode, delivery: AudioDelivery, sections: list[tuple[str | None, JobRequest]]
    ) -> RunRecord:
        """One job per section, recorded together: all are checked before any is queued."""
        new_jobs = []
        for index, (section_id, request) in enumerate(sections):
            try:
                new_jobs.append((section_id, await self._new_job(request)))
            except VoiceGraphError as exc:
                if mode == "simple":
                    raise
                where = f"sections[{index}] (id {section_id!r})"
                raise type(exc)(f"{where}: {exc.message}") from None
        run: RunRecord = await self._call_storage("create_run", mode, delivery, new_jobs)
        if await self.runner.claim_now([section.job.id for section in run.sections]):
            run = await self.run_status(run.id)
        return run

    async def _new_job(self, request: JobRequest) -> NewJob:
        self._check_caller_data(request)
        callback_url, error_url = await asyncio.to_thread(self._callback_urls, request)
        job = await self.tts.validate(request)
        # What a runner needs to make the audio again, wherever it runs.
        speech = request.model_dump(
            mode="json", include={*SpeechParams.model_fields, "captions"}, exclude_none=True
        )
        return NewJob(
            request=speech,
            voice_id=job.voice_id,
            story_id=request.story_id,
            user_id=request.user_id,
            metadata=request.metadata,
            callback_url=callback_url,
            error_callback_url=error_url,
        )

    def _check_caller_data(self, request: JobRequest) -> None:
        limits = self.settings.jobs
        for name in ("story_id", "user_id"):
            value = getattr(request, name)
            if value is not None and len(value) > limits.max_id_chars:
                raise InvalidRequestError(
                    f"{name} is {len(value)} characters; the limit is {limits.max_id_chars}"
                )
        if request.metadata is not None:
            size = len(json.dumps(request.metadata, separators=(",", ":")).encode())
            if size > limits.max_metadata_bytes:
                raise InvalidRequestError(
                    f"metadata is {size} bytes as JSON; the limit is {limits.max_metadata_bytes}. "
                    "Send an id that points at your data instead"
                )

    def _callback_urls(self, request: JobRequest) -> tuple[str | None, str | None]:
        """Both URLs, the error one derived when not given, checked against
        the same rules as voice_url now rather than failing at delivery."""
        error_url, error_field = request.error_callback_url, "error_callback_url"
        if error_url is None and request.callback_url is not None:
            error_url = error_callback_url(request.callback_url)
            error_field += " (derived from callback_url)"
        for field, url in (("callback_url", request.callback_url), (error_field, error_url)):
            if url is not None:
                try:
                    check_url(url, self._allow)
                except VoiceGraphError as exc:
                    raise UrlRefusedError(f"{field}: {exc.message}") from None
        return request.callback_url, error_url

    async def status(self, job_id: str) -> JobRecord:
        return await self._call_storage("get_job", job_id)

    async def run_status(self, run_id: str) -> RunRecord:
        return await self._call_storage("get_run", run_id)

    async def audio(self, path: str) -> bytes:
        return await self._call_storage("get", path)

    async def cancel(self, job_id: str) -> JobRecord:
        record = await self._call_storage("cancel_job", job_id)
        self.runner.stop_here([job_id])
        return record

    async def cancel_run(self, run_id: str) -> RunRecord:
        run = await self._call_storage("cancel_run", run_id)
        self.runner.stop_here([section.job.id for section in run.sections if section.job.status == "cancelled"])
        return run

    async def purge_queue(self) -> int:
        return await self._call_storage("purge_queue")

    async def advance_stream(self, run_id: str) -> tuple[RunRecord, int]:
        return await self._call_storage("advance_stream", run_id)

    async def counts(self) -> dict[str, int]:
        return await self._call_storage("job_counts")

    async def _call_storage(self, method: str, *args: Any) -> Any:
        return await call_storage(self._storage, method, *args, retry_s=self.settings.jobs.storage_retry_s)
