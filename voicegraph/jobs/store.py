"""Jobs, runs and leases in the job database.

Job states: queued → running → succeeded | failed | cancelled. A running job
is leased by one runner (an ingress replica), which renews the lease as it
works; a lease that runs out means the runner died, and the job is taken over
by another runner (it starts again) until `max_attempts` runs, then it fails.
"""

from __future__ import annotations

import uuid
from typing import Any

from voicegraph.jobs.callback_outbox import CallbackOutbox
from voicegraph.jobs.callbacks import ErrorCallback, SuccessCallback
from voicegraph.jobs.database import JobDatabase
from voicegraph.jobs.records import (
    FINISHED,
    JOB_ID_PREFIX,
    RUN_ID_PREFIX,
    AudioDelivery,
    JobRecord,
    JobResult,
    JobStatus,
    NewJob,
    RunMode,
    RunRecord,
    RunSection,
    from_json,
    job_record,
    to_json,
)
from voicegraph.jobs.upload_outbox import UploadOutbox


class JobStore:
    """Jobs, runs and leases; their callbacks and uploads go to the outboxes in the same transaction."""

    def __init__(self, db: JobDatabase, *, callback_expiry_s: float):
        self.db = db
        self.uploads = UploadOutbox(self.db)
        self.callbacks = CallbackOutbox(self.db, callback_expiry_s)

    def close(self) -> None:
        self.db.close()

    # Jobs

    def create(self, job: NewJob) -> JobRecord:
        with self.db.transaction() as db:
            job_id = self._insert(db, job, self.db.clock())
        return self.get(job_id)

    def _insert(self, db, job: NewJob, now: float) -> str:
        job_id = JOB_ID_PREFIX + uuid.uuid4().hex
        db.execute(
            "INSERT INTO jobs (id, status, request, voice_id, story_id, user_id, metadata,"
            " callback_url, error_callback_url, created_at, updated_at)"
            " VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id, to_json(job.request), job.voice_id, job.story_id, job.user_id,
                to_json(job.metadata), job.callback_url, job.error_callback_url, now, now,
            ),
        )
        return job_id

    def create_run(
        self, mode: RunMode, delivery: AudioDelivery, sections: list[tuple[str | None, NewJob]]
    ) -> RunRecord:
        """A run and its jobs, all or nothing: no half-queued batch."""
        run_id = RUN_ID_PREFIX + uuid.uuid4().hex
        now = self.db.clock()
        with self.db.transaction() as db:
            ids = [(section_id, self._insert(db, job, now)) for section_id, job in sections]
            db.execute(
                "INSERT INTO runs (id, mode, delivery, sections, created_at) VALUES (?, ?, ?, ?, ?)",
                (run_id, mode, delivery, to_json(ids), now),
            )
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self.db.reading() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        sections = tuple(
            RunSection(section_id, self.get(job_id)) for section_id, job_id in from_json(row["sections"])
        )
        return RunRecord(row["id"], row["mode"], row["delivery"], row["created_at"], sections, row["streamed"])

    def advance_stream(self, run_id: str) -> tuple[RunRecord, int] | None:
        """The run, and where its unstreamed sections begin: those from there
        up to the first unfinished one are marked streamed, so each section is
        handed out once, in order."""
        with self.db.transaction() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?" + self.db.locked, (run_id,)).fetchone()
            if row is None:
                return None
            statuses = [
                db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()["status"]
                for _, job_id in from_json(row["sections"])
            ]
            finished = next((i for i, status in enumerate(statuses) if status not in FINISHED), len(statuses))
            db.execute("UPDATE runs SET streamed = GREATEST(streamed, ?) WHERE id = ?", (finished, run_id))
        return self.get_run(run_id), row["streamed"]

    def get(self, job_id: str) -> JobRecord | None:
        with self.db.reading() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            callbacks = db.execute(
                "SELECT * FROM callbacks WHERE job_id = ? ORDER BY created_at", (job_id,)
            ).fetchall()
        return job_record(row, callbacks)

    def claim(
        self, owner: str, lease_s: float, max_attempts: int, job_id: str | None = None
    ) -> JobRecord | None:
        """Lease `job_id` (or the oldest claimable job) to `owner`.

        Claimable: queued, or running with a lease that ran out (its runner
        died). A job that has already had `max_attempts` runs is failed here
        instead, with its error callback, and the next one is tried.
        """
        while True:
            now = self.db.clock()
            with self.db.transaction() as db:
                query = (
                    "SELECT * FROM jobs WHERE (status = 'queued' OR (status = 'running'"
                    " AND stage = 'synthesizing' AND lease_until < ?))"
                )
                params: tuple = (now,)
                if job_id is not None:
                    query += " AND id = ?"
                    params += (job_id,)
                row = db.execute(query + " ORDER BY created_at LIMIT 1" + self.db.skip_locked, params).fetchone()
                if row is None:
                    return None
                if row["attempts"] >= max_attempts:
                    self._give_up(db, row, now)
                    continue
                db.execute(
                    "UPDATE jobs SET status = 'running', stage = 'synthesizing', owner = ?,"
                    " lease_until = ?, attempts = attempts + 1, chunks_done = 0,"
                    " updated_at = ?, started_at = COALESCE(started_at, ?) WHERE id = ?",
                    (owner, now + lease_s, now, now, row["id"]),
                )
                claimed = row["id"]
            return self.get(claimed)

    def reap(self, max_attempts: int) -> int:
        """Fail jobs whose runner died on their last allowed run, even when no
        runner is polling to take them over; returns how many."""
        now = self.db.clock()
        with self.db.transaction() as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE status = 'running' AND stage = 'synthesizing'"
                " AND lease_until < ? AND attempts >= ?" + self.db.skip_locked,
                (now, max_attempts),
            ).fetchall()
            for row in rows:
                self._give_up(db, row, now)
        return len(rows)

    def extend_leases(self, lease_s: float) -> int:
        """Give every running job a full lease from now. Called when the
        StorageActor starts: while it was down no runner could renew, and a
        live runner must not lose its job for that."""
        now = self.db.clock()
        with self.db.transaction() as db:
            return db.execute(
                "UPDATE jobs SET lease_until = GREATEST(lease_until, ?)"
                " WHERE status = 'running' AND stage = 'synthesizing'",
                (now + lease_s,),
            ).rowcount

    def heartbeat(
        self, job_id: str, owner: str, lease_s: float, chunks_done: int, chunks_total: int | None
    ) -> bool:
        """Renew the lease and record progress; False when `owner` no longer
        holds the job (it was taken over or finished), so the runner stops."""
        now = self.db.clock()
        with self.db.transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_until = ?, chunks_done = ?, chunks_total = ?, updated_at = ?"
                " WHERE id = ? AND owner = ? AND status = 'running' AND stage = 'synthesizing'",
                (now + lease_s, chunks_done, chunks_total, now, job_id, owner),
            )
            return cursor.rowcount == 1

    def release(self, job_id: str, owner: str) -> bool:
        """`owner` stops running the job on purpose (its replica is shutting
        down): back in the queue for another runner at once, without waiting
        out the lease, and the run not counted against max_attempts."""
        now = self.db.clock()
        with self.db.transaction() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = 'queued', stage = NULL, owner = NULL, lease_until = NULL,"
                " attempts = attempts - 1, chunks_done = 0, updated_at = ?"
                " WHERE id = ? AND owner = ? AND status = 'running' AND stage = 'synthesizing'",
                (now, job_id, owner),
            )
            return cursor.rowcount == 1

    def audio_ready(
        self,
        job_id: str,
        result: JobResult,
        upload_content_type: str | None,
        chunks: int,
        upload_held_s: float = 0.0,
    ) -> None:
        """The audio is stored: in the bucket (`upload_content_type` None, the
        job succeeds) or staged (its upload is recorded in the same
        transaction, and the job succeeds when the upload does; the caller,
        about to upload it, holds it for `upload_held_s` so that no other
        replica's outbox uploads it too). Only the first report of a run
        counts: a retried one, or one from a runner whose job was taken over,
        changes nothing."""
        now = self.db.clock()
        with self.db.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?" + self.db.locked, (job_id,)).fetchone()
            if row is None or row["status"] != "running" or row["stage"] != "synthesizing":
                return
            db.execute(
                "UPDATE jobs SET result = ?, stage = 'uploading', upload = ?, owner = NULL,"
                " lease_until = NULL, chunks_done = ?, chunks_total = ?, updated_at = ? WHERE id = ?",
                (
                    to_json(result.__dict__), "pending" if upload_content_type else "done",
                    chunks, chunks, now, job_id,
                ),
            )
            if upload_content_type:
                self.uploads.add_in(db, result.path, upload_content_type, job_id, now, held_s=upload_held_s)
            else:
                self._succeed(db, job_id, now)

    def fail(
        self, job_id: str, code: str, message: str, details: Any = None, owner: str | None = None
    ) -> JobRecord | None:
        """Fail a job that is not finished yet and queue its error callback.

        With `owner`, only while that runner still holds it: a runner whose
        job was taken over must not fail the run that replaced it.
        """
        now = self.db.clock()
        with self.db.transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?" + self.db.locked, (job_id,)).fetchone()
            if row is None or row["status"] in FINISHED:
                return None
            if owner is not None and row["owner"] != owner:
                return None
            self._fail(db, row, code, message, now, details)
        return self.get(job_id)

    def cancel(self, job_ids: list[str] | None, message: str) -> list[str]:
        """Cancel the jobs among `job_ids` (None: every queued job) that have
        not made their audio yet, queueing their error callbacks; returns the
        ids cancelled. A running job's runner sees it at its next heartbeat,
        and nothing it reports afterwards changes the job."""
        now = self.db.clock()
        with self.db.transaction() as db:
            if job_ids is None:
                rows = db.execute(
                    "SELECT * FROM jobs WHERE status = 'queued' ORDER BY id" + self.db.locked
                ).fetchall()
            else:
                marks = ",".join("?" * len(job_ids))
                rows = db.execute(
                    f"SELECT * FROM jobs WHERE id IN ({marks}) AND (status = 'queued'"
                    " OR (status = 'running' AND stage = 'synthesizing')) ORDER BY id" + self.db.locked,
                    tuple(job_ids),
                ).fetchall()
            for row in rows:
                self._fail(db, row, "cancelled", message, now, status="cancelled")
        return [row["id"] for row in rows]

    def counts(self) -> dict[str, int]:
        """Jobs by status, how many were run more than once, and how many
        replicas are running jobs now."""
        with self.db.reading() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
            retried = db.execute("SELECT COUNT(*) AS n FROM jobs WHERE attempts > 1").fetchone()["n"]
            owners = db.execute("SELECT owner FROM jobs WHERE status = 'running' AND owner IS NOT NULL")
            # An owner is "<replica>:<run token>": count replicas, not runs.
            runners = len({row["owner"].rsplit(":", 1)[0] for row in owners.fetchall()})
        return {**{row["status"]: row["n"] for row in rows}, "retried": retried, "runners": runners}

    def _fail(
        self, db, row, code: str, message: str, now: float, details: Any = None, status: JobStatus = "failed"
    ) -> None:
        db.execute(
            "UPDATE jobs SET status = ?, stage = NULL, owner = NULL, lease_until = NULL,"
            " error_code = ?, error_message = ?, updated_at = ?, finished_at = ? WHERE id = ?",
            (status, code, message, now, now, row["id"]),
        )
        if row["error_callback_url"]:
            payload = ErrorCallback(
                story_id=row["story_id"],
                error=message,
                error_details={"code": code, **({"details": details} if details else {})},
                user_id=row["user_id"],
                voice_id=row["voice_id"],
                job_id=row["id"],
                metadata=from_json(row["metadata"]),
            )
            self.callbacks.enqueue(db, row["id"], "error", row["error_callback_url"], payload, now)

    def _give_up(self, db, row, now: float) -> None:
        self._fail(
            db, row, "interrupted",
            f"the job was interrupted {row['attempts']} times (its runner stopped) "
            "and was given up; submit it again",
            now,
        )

    def _succeed(self, db, job_id: str, now: float) -> None:
        db.execute(
            "UPDATE jobs SET status = 'succeeded', stage = NULL, upload = 'done',"
            " updated_at = ?, finished_at = ? WHERE id = ?",
            (now, now, job_id),
        )
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row["callback_url"]:
            result = JobResult(**from_json(row["result"]))
            payload = SuccessCallback(
                job_id=job_id,
                status="succeeded",
                story_id=row["story_id"],
                user_id=row["user_id"],
                voice_id=row["voice_id"],
                audio_url=result.url,
                audio_path=result.path,
                content_type=result.content_type,
                format=result.format,
                duration_s=result.duration_s,
                size_bytes=result.size_bytes,
                metadata=from_json(row["metadata"]),
            )
            self.callbacks.enqueue(db, job_id, "success", row["callback_url"], payload, now)

    def upload_done(self, key: str, final_key: str, url: str) -> None:
        """The bucket has the file (under `final_key`, which differs from
        `key` only if the name was taken meanwhile): the job succeeds."""
        now = self.db.clock()
        with self.db.transaction() as db:
            job_id = self.uploads.take(db, key)
            if job_id is None:
                return
            job = db.execute("SELECT * FROM jobs WHERE id = ?" + self.db.locked, (job_id,)).fetchone()
            if job is None or job["stage"] != "uploading":
                return
            result = {**from_json(job["result"]), "path": final_key, "url": url}
            db.execute("UPDATE jobs SET result = ? WHERE id = ?", (to_json(result), job["id"]))
            self._succeed(db, job["id"], now)
