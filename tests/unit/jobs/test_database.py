"""The job database on both backends: schema versions, competing replicas,
and configuration that cannot work failing at once, in one line."""

import threading
import time

import psycopg
import pytest

from tests.helpers.ports import free_port
from voicegraph.core.errors import ConfigError
from voicegraph.jobs.database import SCHEMA_VERSION, open_database, redacted
from voicegraph.jobs.records import NewJob
from voicegraph.jobs.store import JobStore


def test_a_new_database_is_at_the_current_schema_version_and_reopening_changes_nothing(job_database):
    for _ in range(2):
        db = open_database(job_database)
        with db.reading() as tx:
            rows = tx.execute("SELECT version FROM schema_version").fetchall()
        db.close()
        assert [row["version"] for row in rows] == [SCHEMA_VERSION]


def test_a_database_newer_than_this_release_is_refused(job_database):
    db = open_database(job_database)
    with db.transaction() as tx:
        tx.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.close()
    with pytest.raises(ConfigError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        open_database(job_database)


def test_replicas_working_one_queue_never_run_a_job_twice(job_database):
    """Four stores (as four StorageActor replicas would have) claim from one
    queue at once: every job is claimed, each by one of them."""
    first = JobStore(open_database(job_database), callback_expiry_s=60)
    ids = {first.create(NewJob(request={"text": str(i)})).id for i in range(60)}
    stores = [first] + [JobStore(open_database(job_database), callback_expiry_s=60) for _ in range(3)]
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(store: JobStore, name: str) -> None:
        while (job := store.claim(name, 60, 3)) is not None:
            with lock:
                claims.append((job.id, name))

    threads = [threading.Thread(target=work, args=(s, f"replica-{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(job_id for job_id, _ in claims) == sorted(ids)


def test_concurrent_first_opens_migrate_once(postgres):
    """Replicas starting together on an empty database: one migrates, the rest wait and find it done."""
    url = postgres.new_database()
    errors = []

    def open_one():
        try:
            open_database(url).close()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_a_wrong_password_fails_at_once_naming_the_setting_and_hiding_the_password(postgres):
    url = postgres.url(password="not-the-password")
    with pytest.raises(ConfigError) as caught:
        open_database(url)
    message = str(caught.value)
    assert message.startswith("jobs.database_url: cannot use postgresql://voicegraph:***@127.0.0.1:")
    assert "password authentication failed" in message
    assert "not-the-password" not in message and "\n" not in message


def test_an_unreachable_server_fails_within_the_connect_timeout():
    started = time.monotonic()
    with pytest.raises(ConfigError, match="jobs.database_url: cannot use .*127.0.0.1.*refused"):
        open_database(f"postgresql://u:p@127.0.0.1:{free_port()}/jobs", connect_timeout_s=2)
    assert time.monotonic() - started < 10  # a bound against a hang, not a speed target


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cr:et@db:5432/jobs", "postgresql://app:***@db:5432/jobs"),
        ("postgresql://app@db/jobs", "postgresql://app@db/jobs"),
        ("postgres://db/jobs", "postgres://db/jobs"),
    ],
)
def test_urls_are_shown_without_their_password(url, shown):
    assert redacted(url) == shown
