"""Where the response cache keeps the answer to a request, on the service's local storage."""

import time
from pathlib import Path

from voicegraph.engines import Sampling
from voicegraph.engines.espeak import EspeakEngine
from voicegraph.storage.layout import response_cache_keys
from voicegraph.storage.response_cache import cache_key


def entry(service, text: str, fmt: str = "wav", timed: bool = False) -> tuple[Path, Path]:
    """Where the service keeps the default voice's answer to `text` (with captions: `timed`)."""
    info = EspeakEngine().info()
    digest = cache_key(
        text=text,
        normalize=True,
        voice="default",
        language="en-us",
        speed=1.0,
        format_name=fmt,
        sampling=Sampling(),
        engine=info.engine,
        model=info.model,
        chunk_chars=info.chunk_chars_for("en-us"),
        settings=service.settings,
        timed=timed,
    )
    audio, sidecar = response_cache_keys(digest, fmt)
    return service.storage_root / audio, service.storage_root / sidecar


def cached(service, text: str, fmt: str = "wav", timed: bool = False) -> tuple[Path, Path]:
    """The entry, once its background write has finished (sidecar last)."""
    audio, sidecar = entry(service, text, fmt, timed)
    deadline = time.monotonic() + 30
    while not sidecar.is_file():
        assert time.monotonic() < deadline, "the entry was never written"
        time.sleep(0.05)
    return audio, sidecar
