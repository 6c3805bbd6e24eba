"""Engines behind the Synthesizer, chosen by `Settings.engine`."""

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


def build_engine(settings: Settings, num_threads: int = 1) -> Engine:
    """The configured engine; imports happen here so no engine loads another's libraries."""
    if settings.engine == "espeak":
        from voicegraph.engines.espeak import EspeakEngine

        return EspeakEngine()
    if settings.engine == "piper":
        from voicegraph.engines.piper import PiperEngine

        return PiperEngine(settings, num_threads=num_threads)
    if settings.engine == "xtts":
        from voicegraph.engines.xtts import XttsEngine

        return XttsEngine(settings, num_threads=num_threads)
    raise ValueError(f"unknown engine {settings.engine!r}")
