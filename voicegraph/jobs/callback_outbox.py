"""The callback outbox: callbacks owed to customers, kept until delivered or expired.

A callback is queued in the same transaction as the job state it reports
(`enqueue` takes that transaction), so no job ends without its callback. A
replica sending a callback holds it for a while, so that no other replica
sends it too; one that dies mid-send lets it go when the hold runs out. A
hold is known by when it ends: a sender renews its hold just before it sends
(it may have waited longer than the hold for a free thread), and records a
failed attempt only while the hold is still its own, so that it never cuts
short the hold of a sender that took the callback over.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel

from voicegraph.jobs.database import JobDatabase
from voicegraph.jobs.records import CallbackKind, DueCallback


class CallbackOutbox:
    def __init__(self, db: JobDatabase, expiry_s: float):
        self._db = db
        self._expiry_s = expiry_s

    def enqueue(
        self, tx, job_id: str, kind: CallbackKind, url: str, payload: BaseModel, now: float
    ) -> None:
        body = payload.model_dump_json().encode()
        tx.execute(
            "INSERT INTO callbacks (id, job_id, kind, url, body, state, next_attempt_at,"
            " expires_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT DO NOTHING",
            (f"{job_id}.{kind}", job_id, kind, url, body, now, now + self._expiry_s, now),
        )

    def due(self, limit: int, held_s: float = 0.0) -> list[DueCallback]:
        """Pending callbacks whose next attempt is due, held for `held_s` by
        the caller; expired ones are marked so first."""
        now = self._db.clock()
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE callbacks SET state = 'expired' WHERE state = 'pending' AND expires_at <= ?",
                (now,),
            )
            rows = tx.execute(
                "SELECT * FROM callbacks WHERE state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at LIMIT ?" + self._db.skip_locked,
                (now, limit),
            ).fetchall()
            if held_s:
                for row in rows:
                    tx.execute("UPDATE callbacks SET next_attempt_at = ? WHERE id = ?", (now + held_s, row["id"]))
        held_until = now + held_s if held_s else None
        return [
            DueCallback(r["id"], r["job_id"], r["kind"], r["url"], bytes(r["body"]), r["attempts"], held_until)
            for r in rows
        ]

    def renew(self, due: DueCallback, held_s: float) -> DueCallback | None:
        """Hold `due` for `held_s` from now, if its hold is still the caller's;
        None when it is not (the hold ran out and another sender took it, or
        it was delivered)."""
        now = self._db.clock()
        with self._db.transaction() as tx:
            renewed = tx.execute(
                "UPDATE callbacks SET next_attempt_at = ? WHERE id = ? AND state = 'pending' AND next_attempt_at = ?",
                (now + held_s, due.id, due.held_until),
            ).rowcount
        return replace(due, held_until=now + held_s) if renewed else None

    def attempted(
        self,
        callback_id: str,
        delivered: bool,
        status: int | None,
        error: str | None,
        retry_in_s: float,
        held_until: float | None = None,
    ) -> None:
        """Record one attempt. A delivery is always recorded; a failure only
        while the caller's hold (`held_until`, from `due` or `renew`) lasts."""
        now = self._db.clock()
        with self._db.transaction() as tx:
            if delivered:
                tx.execute(
                    "UPDATE callbacks SET state = 'delivered', attempts = attempts + 1,"
                    " last_status = ?, last_error = NULL, delivered_at = ? WHERE id = ?",
                    (status, now, callback_id),
                )
            else:
                still_held = "" if held_until is None else " AND next_attempt_at = ?"
                tx.execute(
                    "UPDATE callbacks SET attempts = attempts + 1, last_status = ?, last_error = ?,"
                    " next_attempt_at = ? WHERE id = ? AND state = 'pending'" + still_held,
                    (status, error, now + retry_in_s, callback_id, *(() if held_until is None else (held_until,))),
                )

    def counts(self) -> dict[str, int]:
        """Callbacks by state: pending, delivered, expired."""
        with self._db.reading() as db:
            rows = db.execute("SELECT state, COUNT(*) AS n FROM callbacks GROUP BY state").fetchall()
        return {row["state"]: row["n"] for row in rows}
