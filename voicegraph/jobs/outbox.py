"""Drains what the job database still owes: staged uploads and callbacks.

Ray-free; each StorageActor replica calls `tick` in a loop. With a shared
database several replicas drain it at once: each holds what it sends
(`jobs.outbox_hold_s`), so nothing is sent twice. Callbacks go out on their
own thread pool, so a slow receiver holds at most `max_in_flight` threads and
never the ones that store audio.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from voicegraph.core import metrics
from voicegraph.core.retry import backoff_s
from voicegraph.core.settings import Settings
from voicegraph.jobs.callbacks import Delivery, deliver, delivery_headers
from voicegraph.jobs.records import JOB_STATUSES, DueCallback
from voicegraph.jobs.service import JobService
from voicegraph.net.safe_fetch import AllowList

logger = logging.getLogger("ray.serve")

_EVENTS = {"success": "tts.job.succeeded", "error": "tts.job.failed"}


class Outbox:
    def __init__(self, jobs: JobService, settings: Settings):
        self.jobs = jobs
        self.store = jobs.store
        self.settings = settings
        self.allow = AllowList.parse(settings.outbound.allow)
        self._in_flight: set[str] = set()
        self._next_report = 0.0  # time.monotonic() at which the gauges are counted again
        self._pool = ThreadPoolExecutor(
            max_workers=settings.callbacks.max_in_flight, thread_name_prefix="callback"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def upload_due(self) -> int:
        """Upload staged files whose retry is due; stops at the first failure
        (the bucket is down: the others would wait out the same timeout)."""
        uploaded = 0
        # One at a time: each held only when this replica is about to send it.
        while uploaded < 16 and (due := self.store.uploads.due(1, held_s=self.settings.jobs.outbox_hold_s)):
            if self.jobs.upload(due[0]) is None:
                break
            uploaded += 1
        return uploaded

    def deliver(self, due: DueCallback) -> Delivery | None:
        """Send one held callback; None when its hold was lost before it could
        be sent (this replica was too slow to start), and it was not sent."""
        options = self.settings.callbacks
        due = self.store.callbacks.renew(due, self.settings.jobs.outbox_hold_s)
        if due is None:
            return None
        attempt = due.attempts + 1
        secret = options.secret.get_secret_value() if options.secret else None
        headers = delivery_headers(
            due.body,
            idempotency_key=due.id,
            event=_EVENTS[due.kind],
            attempt=attempt,
            secret=secret,
            now=time.time(),
        )
        result = deliver(
            due.url, due.body, headers, allow=self.allow, timeout_s=options.timeout_s
        )
        retry_in = backoff_s(attempt, options.initial_backoff_s, options.max_backoff_s)
        self.store.callbacks.attempted(
            due.id, result.delivered, result.status, result.error, retry_in, held_until=due.held_until
        )
        metrics.count("voicegraph_callback_deliveries", outcome="delivered" if result.delivered else "failed")
        if not result.delivered:
            logger.warning(
                "%s callback of %s not delivered (attempt %d): %s; retrying in %.1f s",
                due.kind, due.job_id, attempt, result.error or f"HTTP {result.status}", retry_in,
            )
        return result

    async def tick(self) -> None:
        await asyncio.to_thread(self.store.reap, self.settings.jobs.max_attempts)
        room = self.settings.callbacks.max_in_flight - len(self._in_flight)
        if room > 0:
            loop = asyncio.get_running_loop()
            held_s = self.settings.jobs.outbox_hold_s
            for due in await asyncio.to_thread(self.store.callbacks.due, room, held_s):
                self._in_flight.add(due.id)
                future = loop.run_in_executor(self._pool, self.deliver, due)
                future.add_done_callback(self._delivered(due.id))
        if self.jobs.files.spool is not None:
            await asyncio.to_thread(self.upload_due)
        if time.monotonic() >= self._next_report:
            self._next_report = time.monotonic() + self.settings.jobs.gauges_interval_s
            await asyncio.to_thread(self.report)
            if self.jobs.files.spool is not None:
                await asyncio.to_thread(self.jobs.adopt_orphans)

    def report(self) -> None:
        """Gauges from the database: it, not this replica's memory, is the truth."""
        counts = self.store.counts()
        for status in JOB_STATUSES:
            metrics.set_gauge("voicegraph_jobs", counts.get(status, 0), status=status)
        callbacks = self.store.callbacks.counts()
        metrics.set_gauge("voicegraph_callback_outbox_depth", callbacks.get("pending", 0))
        metrics.set_gauge("voicegraph_callbacks_expired", callbacks.get("expired", 0))
        metrics.set_gauge("voicegraph_uploads_pending", self.store.uploads.count())

    def _delivered(self, callback_id: str):
        def done(future: asyncio.Future) -> None:
            self._in_flight.discard(callback_id)
            if not future.cancelled() and future.exception() is not None:
                logger.error("callback %s: delivery crashed", callback_id, exc_info=future.exception())

        return done
