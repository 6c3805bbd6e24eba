"""Two rules every folder of stored files keeps: keys stay inside their root,
and a file appears whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Names of files being written; listings skip them, a restart removes them.
TEMP_PREFIX = ".tmp-"


def path_inside(root: Path, key: str) -> Path:
    """`root / key`, resolved; ValueError when the key would lead outside `root`."""
    path = (root / key).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"key {key!r} escapes the root {root}")
    return path


def staged_copy(directory: Path, data: bytes) -> str:
    """`data` in a synced temp file in `directory`, to be published by link or
    rename: a reader never sees a partial file, and a crash never leaves a
    truncated one under a real name. The caller removes it if not published."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temp_name)
        raise
    return temp_name
