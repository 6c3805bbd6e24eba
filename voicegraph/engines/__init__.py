"""Engines behind the Synthesizers, one deployment per name in `Settings.engines`."""

from __future__ import annotations

from voicegraph.core.settings import Settings
from voicegraph.engines.base import (
    ChunkRequest,
    ClonedVoice,
    Engine,
    EngineInfo,
    Sampling,
    Voice,
    VoiceInfo,
)

__all__ = [
    "ChunkRequest",
    "ClonedVoice", "Engine", "EngineInfo", "Sampling", "Voice", "VoiceInfo",
    "build_engine",
]


def build_engine(settings: Settings, num_threads: int = 1, name: str | None = None) -> Engine:
    """The engine `name` (the default engine if None); imports happen here so
    no engine loads another's libraries."""
    name = name or settings.engine
    if name == "espeak":
        from voicegraph.engines.espeak import EspeakEngine

        return EspeakEngine()
    if name == "piper":
        from voicegraph.engines.piper import PiperEngine

        return PiperEngine(settings, num_threads=num_threads)
    if name == "xtts":
        from voicegraph.engines.xtts import XttsEngine

        return XttsEngine(settings, num_threads=num_threads)
    raise ValueError(f"unknown engine {name!r}")
