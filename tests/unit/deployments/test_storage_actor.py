"""The StorageActor's handle methods: each runs a real method of its core, in a thread."""

import asyncio
import inspect
import threading

from deployments.storage_actor import StorageActor
from voicegraph.jobs.service import JobService
from voicegraph.storage.service import StorageService

ACTOR = StorageActor.func_or_class
CORES = {"files": StorageService, "jobs": JobService}


def handle_methods() -> dict[str, object]:
    return {
        name: value
        for name, value in vars(ACTOR).items()
        if inspect.iscoroutinefunction(value) and not name.startswith("_") and name != "check_health"
    }


def test_every_handle_method_is_a_method_of_one_of_its_cores():
    methods = handle_methods()
    assert len(methods) == 23
    for name in methods:
        owners = [core for core in CORES.values() if callable(getattr(core, name, None))]
        assert owners, f"StorageActor.{name} runs no method of its cores"


def test_a_handle_method_runs_the_core_in_a_worker_thread_with_its_arguments():
    class Files:
        def get(self, key, *, default=None):
            return key, default, threading.current_thread() is threading.main_thread()

    actor = object.__new__(ACTOR)
    actor.files = Files()
    assert asyncio.run(ACTOR.get(actor, "k", default=b"")) == ("k", b"", False)
    assert ACTOR.get.__name__ == "get"
