"""Version info for /health and logs: what code is running, built when."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

_SOURCE_DIR = Path(__file__).resolve().parent


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=_SOURCE_DIR, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


@functools.cache
def version_info(git_sha: str | None = None, build_time: str | None = None) -> dict[str, str | None]:
    """Image builds set VG_GIT_SHA and VG_BUILD_TIME; a checkout reads git."""
    return {
        "app_version": _package_version("voicegraph") or "unknown",
        "git_sha": git_sha or _git("rev-parse", "HEAD") or "unknown",
        "build_time": build_time or _git("log", "-1", "--format=%cI") or "unknown",
        "python_version": platform.python_version(),
        "ray_version": _package_version("ray"),
        # Read from package metadata: importing torch costs seconds and memory.
        "torch_version": _package_version("torch"),
    }
