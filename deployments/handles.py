"""Deployment handles as plain async objects, for the Ray-free cores."""

from __future__ import annotations

from typing import Any

from ray.serve.handle import DeploymentHandle


class AsyncCalls:
    """`await calls.method(*args)` runs `await handle.method.remote(*args)`.

    The cores under the deployments (VoiceProfiles, VoiceCloner) take any
    object with those async methods: in a deployment this wraps a handle to
    another deployment; in unit tests a local object stands in its place.
    """

    def __init__(self, handle: DeploymentHandle):
        self._handle = handle

    def __getattr__(self, method: str) -> Any:
        remote = getattr(self._handle, method).remote

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await remote(*args, **kwargs)

        return call
