"""Engines behind the Synthesizer, chosen by `Settings.engine`."""

from __future__ import annotations

from deployments.engines.base import Engine, EngineInfo, VoiceInfo
from serve_app.settings import Settings

__all__ = ["Engine", "EngineInfo", "VoiceInfo", "build_engine"]


def build_engine(settings: Settings) -> Engine:
    if settings.engine == "espeak":
        from deployments.engines.espeak import EspeakEngine

        return EspeakEngine()
    raise ValueError(f"unknown engine {settings.engine!r}")
