import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def job_database(request, tmp_path):
    """Where a job database lives: a SQLite file, or a new PostgreSQL database.
    Tests that take it run once on each backend, from one table of cases."""
    if request.param == "sqlite":
        return tmp_path / "jobs.sqlite3"
    return request.getfixturevalue("postgres").new_database()
