"""The job database: leases, takeovers, the outboxes, and what survives a reopen."""

import json

import pytest

from voicegraph.jobs.database import open_database
from voicegraph.jobs.records import JobResult, NewJob
from voicegraph.jobs.store import JobStore

LEASE = 10.0


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def open_store(job_database, clock) -> JobStore:
    return JobStore(open_database(job_database, clock), callback_expiry_s=3600)


@pytest.fixture
def store(job_database, clock):
    store = open_store(job_database, clock)
    yield store
    store.close()


def new_job(**overrides) -> NewJob:
    fields = dict(
        request={"text": "Hello."},
        voice_id="default",
        story_id="story-1",
        user_id="user-1",
        metadata={"chapter": 3},
        callback_url="https://app.example/api/tts/callback",
        error_callback_url="https://app.example/api/tts/error-callback",
    )
    return NewJob(**{**fields, **overrides})


RESULT = JobResult(
    path="tts_generations/TTS_voice_default_20261121_090000.wav",
    url="https://bucket/x.wav",
    format="wav",
    content_type="audio/wav",
    size_bytes=1234,
    duration_s=1.5,
    sample_rate=22050,
)


def test_create_then_claim_leases_the_job(store):
    job = store.create(new_job())
    assert job.status == "queued" and job.attempts == 0 and job.request == {"text": "Hello."}
    claimed = store.claim("runner-a", LEASE, 3)
    assert claimed.id == job.id and claimed.status == "running" and claimed.stage == "synthesizing"
    assert claimed.owner == "runner-a" and claimed.attempts == 1
    assert store.claim("runner-b", LEASE, 3) is None  # leased: nobody else gets it


def test_claim_by_id_takes_only_that_job(store):
    first, second = store.create(new_job()), store.create(new_job())
    assert store.claim("a", LEASE, 3, second.id).id == second.id
    assert store.claim("b", LEASE, 3, second.id) is None
    assert store.claim("b", LEASE, 3).id == first.id


def test_heartbeat_renews_lease_and_records_progress(store, clock):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    clock.now += LEASE * 0.8
    assert store.heartbeat(job.id, "a", LEASE, 2, 5)
    clock.now += LEASE * 0.8  # past the first lease, within the renewed one
    assert store.claim("b", LEASE, 3) is None
    record = store.get(job.id)
    assert (record.chunks_done, record.chunks_total) == (2, 5)
    assert not store.heartbeat(job.id, "someone-else", LEASE, 3, 5)


def test_a_released_job_is_claimable_at_once_and_the_run_is_not_counted(store):
    job = store.create(new_job())
    store.claim("a", LEASE, 1)
    store.heartbeat(job.id, "a", LEASE, 2, 5)
    assert not store.release(job.id, "someone-else")
    assert store.release(job.id, "a")
    record = store.get(job.id)
    assert (record.status, record.owner, record.attempts, record.chunks_done) == ("queued", None, 0, 0)
    # Within the old lease, and with max_attempts 1 already used once: still runs.
    taken = store.claim("b", LEASE, 1)
    assert taken.id == job.id and taken.attempts == 1
    assert not store.release(job.id, "a")  # the old runner no longer holds it


def test_expired_lease_is_taken_over_and_the_old_runner_is_told(store, clock):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    clock.now += LEASE + 1
    taken = store.claim("b", LEASE, 3)
    assert taken.id == job.id and taken.owner == "b" and taken.attempts == 2
    assert not store.heartbeat(job.id, "a", LEASE, 1, 5)
    # The old runner's failure must not fail the run that replaced it.
    assert store.fail(job.id, "synthesis_failed", "boom", owner="a") is None
    assert store.get(job.id).status == "running"


def test_a_restarted_database_owner_gives_running_jobs_a_fresh_lease(store, clock):
    # The StorageActor was down longer than a lease: its runner could not renew.
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    clock.now += LEASE * 3
    assert store.extend_leases(LEASE) == 1
    assert store.claim("b", LEASE, 3) is None
    assert store.heartbeat(job.id, "a", LEASE, 1, 5)  # the live runner keeps its job
    clock.now += LEASE * 1.5
    assert store.claim("b", LEASE, 3).owner == "b"  # a dead one is still taken over


def test_job_interrupted_on_every_run_fails_with_error_callback(store, clock):
    job = store.create(new_job())
    for runner in ("a", "b"):
        assert store.claim(runner, LEASE, 2) is not None
        clock.now += LEASE + 1
    assert store.claim("c", LEASE, 2) is None
    record = store.get(job.id)
    assert record.status == "failed" and record.error_code == "interrupted"
    (callback,) = record.callbacks
    assert callback.kind == "error" and callback.url.endswith("/api/tts/error-callback")
    (due,) = store.callbacks.due(10)
    payload = json.loads(due.body)
    assert payload["job_id"] == job.id and payload["story_id"] == "story-1"
    assert payload["error"].startswith("the job was interrupted 2 times")
    assert payload["metadata"] == {"chapter": 3} and payload["voice_id"] == "default"


def test_reap_fails_dead_last_attempts_without_a_poller(store, clock):
    job = store.create(new_job())
    store.claim("a", LEASE, 1)
    assert store.reap(1) == 0  # lease still live
    clock.now += LEASE + 1
    assert store.reap(1) == 1
    assert store.get(job.id).status == "failed"


def test_audio_ready_in_bucket_succeeds_and_queues_success_callback(store):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    # Finished before any heartbeat reported progress: the report itself does.
    store.audio_ready(job.id, RESULT, upload_content_type=None, chunks=5)
    record = store.get(job.id)
    assert record.status == "succeeded" and record.upload == "done" and record.result == RESULT
    assert (record.chunks_done, record.chunks_total) == (5, 5)
    (due,) = store.callbacks.due(10)
    payload = json.loads(due.body)
    assert payload["status"] == "succeeded" and payload["audio_url"] == RESULT.url
    assert payload["audio_path"] == RESULT.path and payload["duration_s"] == 1.5
    assert due.id == f"{job.id}.success"


def test_audio_ready_twice_counts_once(store):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    store.audio_ready(job.id, RESULT, None, 5)
    store.audio_ready(job.id, RESULT, None, 5)
    assert len(store.get(job.id).callbacks) == 1
    assert store.fail(job.id, "late", "too late") is None
    assert store.get(job.id).status == "succeeded"


def test_pending_upload_succeeds_the_job_when_done(store):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    store.audio_ready(job.id, RESULT, upload_content_type="audio/wav", chunks=5)
    record = store.get(job.id)
    assert record.status == "running" and record.stage == "uploading" and record.upload == "pending"
    assert record.callbacks == ()  # the audio URL does not work yet
    (pending,) = store.uploads.due()
    assert (pending.key, pending.job_id) == (RESULT.path, job.id)
    store.uploads.failed(pending.key, "bucket down", retry_in_s=30)
    assert store.uploads.due() == []
    renamed = RESULT.path.replace(".wav", "_2.wav")
    store.upload_done(pending.key, renamed, "https://bucket/x_2.wav")
    record = store.get(job.id)
    assert record.status == "succeeded" and record.upload == "done" and record.result.path == renamed
    assert json.loads(store.callbacks.due(10)[0].body)["audio_url"] == "https://bucket/x_2.wav"


def test_uploading_job_is_not_taken_over(store, clock):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    store.audio_ready(job.id, RESULT, upload_content_type="audio/wav", chunks=5)
    clock.now += LEASE * 100
    assert store.claim("b", LEASE, 3) is None and store.reap(1) == 0
    assert store.get(job.id).stage == "uploading"


def test_callback_retries_then_delivers(store, clock):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    store.fail(job.id, "unknown_voice", "voice 'x' does not exist", owner="a")
    (due,) = store.callbacks.due(10)
    store.callbacks.attempted(due.id, False, 503, "HTTP 503", retry_in_s=5)
    assert store.callbacks.due(10) == []
    clock.now += 5
    (due,) = store.callbacks.due(10, held_s=30)
    assert due.attempts == 1
    assert store.callbacks.due(10) == []  # held by whoever is sending it
    store.callbacks.attempted(due.id, True, 200, None, retry_in_s=5)
    (callback,) = store.get(job.id).callbacks
    assert callback.state == "delivered" and callback.attempts == 2 and callback.last_status == 200
    assert store.callbacks.due(10) == []


def test_a_held_callback_goes_to_another_sender_when_its_hold_runs_out(store, clock):
    job = store.create(new_job())
    store.fail(job.id, "x", "y")
    (held,) = store.callbacks.due(10, held_s=30)
    clock.now += 29
    assert store.callbacks.due(10, held_s=30) == []
    clock.now += 1  # the first sender died mid-send
    (again,) = store.callbacks.due(10, held_s=30)
    assert again.id == held.id and again.attempts == 0


def test_a_sender_that_lost_its_hold_neither_sends_nor_cuts_the_new_hold_short(store, clock):
    job = store.create(new_job())
    store.fail(job.id, "x", "y")
    (late,) = store.callbacks.due(10, held_s=30)
    clock.now += 30  # its sender waited that long for a free thread
    (taken,) = store.callbacks.due(10, held_s=30)
    assert store.callbacks.renew(late, held_s=30) is None
    # A failure recorded by the late sender leaves the new holder's hold alone.
    store.callbacks.attempted(late.id, False, 503, "HTTP 503", retry_in_s=0.1, held_until=late.held_until)
    clock.now += 1
    assert store.callbacks.due(10, held_s=30) == []
    renewed = store.callbacks.renew(taken, held_s=30)
    assert renewed is not None and renewed.held_until == clock.now + 30
    clock.now += 29  # held for 30 s from the renewal, not from the take-over
    assert store.callbacks.due(10, held_s=30) == []
    store.callbacks.attempted(renewed.id, False, 503, "HTTP 503", retry_in_s=1, held_until=renewed.held_until)
    assert store.get(job.id).callbacks[0].attempts == 1
    clock.now += 1
    assert [due.id for due in store.callbacks.due(10, held_s=30)] == [taken.id]


def test_a_delivered_callback_is_recorded_even_after_its_hold_ran_out(store, clock):
    job = store.create(new_job())
    store.fail(job.id, "x", "y")
    (due,) = store.callbacks.due(10, held_s=30)
    clock.now += 31
    store.callbacks.attempted(due.id, True, 200, None, retry_in_s=1, held_until=due.held_until)
    assert store.get(job.id).callbacks[0].state == "delivered"
    assert store.callbacks.due(10, held_s=30) == [] and store.callbacks.renew(due, held_s=30) is None


def test_a_held_upload_goes_to_another_sender_when_its_hold_runs_out(store, clock):
    store.uploads.add("tts_generations/a.wav", "audio/wav", None, held_s=30)
    store.uploads.add("tts_generations/b.wav", "audio/wav", None)
    assert [u.key for u in store.uploads.due(held_s=30)] == ["tts_generations/b.wav"]
    assert store.uploads.due() == []
    clock.now += 30
    assert sorted(u.key for u in store.uploads.due(held_s=30)) == ["tts_generations/a.wav", "tts_generations/b.wav"]


def test_undelivered_callback_expires(store, clock):
    job = store.create(new_job())
    store.fail(job.id, "x", "y")
    clock.now += 3600
    assert store.callbacks.due(10) == []
    assert store.get(job.id).callbacks[0].state == "expired"


def test_no_callback_url_no_callback(store):
    job = store.create(new_job(callback_url=None, error_callback_url=None))
    store.fail(job.id, "x", "y")
    assert store.get(job.id).callbacks == () and store.callbacks.due(10) == []


def test_everything_survives_reopening(job_database, clock):
    store = open_store(job_database, clock)
    done = store.create(new_job())
    store.claim("a", LEASE, 3, done.id)
    store.audio_ready(done.id, RESULT, "audio/wav", 5)
    queued = store.create(new_job())
    store.close()
    reopened = open_store(job_database, clock)
    assert reopened.get(done.id).upload == "pending"
    assert [u.key for u in reopened.uploads.due()] == [RESULT.path]
    assert reopened.claim("b", LEASE, 3).id == queued.id
    reopened.close()


def test_unknown_job_is_none(store):
    assert store.get("job_nope") is None
    assert store.fail("job_nope", "x", "y") is None


def test_a_run_records_its_jobs_in_order_and_survives_a_reopen(job_database, clock):
    store = open_store(job_database, clock)
    sections = [(name, new_job(request={"text": name})) for name in ("intro", "body", "outro")]
    run = store.create_run("batch", "url", sections)
    assert run.id.startswith("run_") and (run.mode, run.delivery) == ("batch", "url")
    assert [s.id for s in run.sections] == ["intro", "body", "outro"]
    assert [s.job.request["text"] for s in run.sections] == ["intro", "body", "outro"]
    assert all(s.job.status == "queued" for s in run.sections)
    store.close()
    reopened = open_store(job_database, clock)
    assert reopened.get_run(run.id) == run
    # Its jobs are ordinary jobs: any runner claims them.
    assert reopened.claim("runner", LEASE, 3).id == run.sections[0].job.id
    assert reopened.get_run("run_missing") is None
    reopened.close()


def test_a_run_is_all_or_nothing(store):
    unstorable = new_job(request={"text": object()})  # not JSON: the insert fails
    with pytest.raises(TypeError):
        store.create_run("batch", "base64", [("a", new_job()), ("b", unstorable)])
    assert store.claim("runner", LEASE, 3) is None  # the first section was rolled back too


def test_a_cancelled_queued_job_is_never_claimed_and_says_so_in_its_callback(store):
    job = store.create(new_job())
    assert store.cancel([job.id], "cancelled at the caller's request") == [job.id]
    assert store.claim("a", LEASE, 3) is None
    record = store.get(job.id)
    assert (record.status, record.error_code) == ("cancelled", "cancelled") and record.finished_at
    (due,) = store.callbacks.due(10)
    payload = json.loads(due.body)
    assert due.kind == "error" and payload["error_details"] == {"code": "cancelled"}
    assert payload["error"] == "cancelled at the caller's request" and payload["job_id"] == job.id


def test_a_cancelled_running_job_loses_its_lease_and_ignores_late_reports(store):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    assert store.cancel([job.id], "stop") == [job.id]
    assert store.heartbeat(job.id, "a", LEASE, 2, 5) is False  # the runner stops at its next heartbeat
    store.audio_ready(job.id, RESULT, None, 5)
    assert store.fail(job.id, "synthesis_failed", "late", owner="a") is None
    record = store.get(job.id)
    assert record.status == "cancelled" and record.result is None
    assert [c.kind for c in record.callbacks] == ["error"]


@pytest.mark.parametrize("finish", ["succeed", "fail", "upload"])
def test_finished_jobs_and_stored_audio_cannot_be_cancelled(store, finish):
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    if finish == "succeed":
        store.audio_ready(job.id, RESULT, None, 5)
    elif finish == "upload":
        store.audio_ready(job.id, RESULT, "audio/wav", 5)  # stored locally, its upload pending
    else:
        store.fail(job.id, "synthesis_failed", "no")
    before = store.get(job.id)
    assert store.cancel([job.id], "stop") == []
    assert store.get(job.id) == before


def test_purge_cancels_only_queued_jobs(store):
    running, queued, other = store.create(new_job()), store.create(new_job()), store.create(new_job())
    store.claim("a", LEASE, 3, running.id)
    assert sorted(store.cancel(None, "purged")) == sorted([queued.id, other.id])
    assert store.get(running.id).status == "running"
    assert store.counts() == {"running": 1, "cancelled": 2, "retried": 0, "runners": 1}


def test_a_cancellation_survives_reopening(job_database, clock):
    store = open_store(job_database, clock)
    job = store.create(new_job())
    store.claim("a", LEASE, 3)
    store.cancel([job.id], "stop")
    store.close()
    clock.now += LEASE + 1  # its runner's lease has run out: still nothing to take over
    reopened = open_store(job_database, clock)
    assert reopened.claim("b", LEASE, 3) is None and reopened.reap(3) == 0
    assert reopened.get(job.id).status == "cancelled"
    reopened.close()


def test_the_stream_hands_out_finished_sections_once_in_order(store):
    run = store.create_run("batch", "url", [(s, new_job()) for s in "abc"])
    a, b, c = (section.job.id for section in run.sections)
    for job_id in (b, a):
        store.claim("r", LEASE, 3, job_id)
    store.audio_ready(b, RESULT, None, 1)  # b before a: nothing to hand out until a is done
    assert store.advance_stream(run.id)[1:] == (0,) and store.get_run(run.id).streamed == 0
    store.fail(a, "synthesis_failed", "no")
    _, start = store.advance_stream(run.id)
    assert (start, store.get_run(run.id).streamed) == (0, 2)
    assert store.advance_stream(run.id)[1] == 2 and store.get_run(run.id).streamed == 2
    store.cancel([c], "stop")
    assert store.advance_stream(run.id)[0].streamed == 3
    assert store.advance_stream("run_nope") is None


def test_started_at_is_the_first_claim(store, clock):
    job = store.create(new_job())
    clock.now += 2
    store.claim("a", LEASE, 3)
    clock.now += LEASE + 1
    store.claim("b", LEASE, 3)  # a takeover keeps the first start
    assert store.get(job.id).started_at - job.created_at == 2


def test_a_database_from_before_the_added_columns_gets_them(tmp_path, clock):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, mode TEXT NOT NULL, delivery TEXT NOT NULL,"
        " sections TEXT NOT NULL, created_at REAL NOT NULL);"
        "INSERT INTO runs VALUES ('run_old', 'simple', 'url', '[]', 1.0);"
    )
    old.close()
    store = open_store(path, clock)
    assert store.get_run("run_old").streamed == 0
    store.close()
