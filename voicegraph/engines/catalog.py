"""The engines an application serves, and which one a voice id names.

A preset's full id is `<engine>/<voice>` (`piper/en_us-joe-medium`,
`xtts/Ana Florence`); a bare id is accepted where it is unambiguous: one
engine offers it, or the default engine does. Clones keep their own ids and
carry their engine in their record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from voicegraph.core.errors import AmbiguousVoiceError, UnknownEngineError, UnknownVoiceError
from voicegraph.engines.base import EngineInfo, cloning_unsupported

SEPARATOR = "/"


def qualified(engine: str, voice_id: str) -> str:
    return f"{engine}{SEPARATOR}{voice_id}"


@dataclass(frozen=True)
class Preset:
    """A preset voice and the engine that speaks it."""

    info: EngineInfo
    voice_id: str  # the engine's own id, without the engine

    @property
    def engine(self) -> str:
        return self.info.engine

    @property
    def full_id(self) -> str:
        return qualified(self.engine, self.voice_id)


class EngineCatalog:
    def __init__(self, infos: Iterable[EngineInfo], default_engine: str):
        self._infos: dict[str, EngineInfo] = {info.engine: info for info in infos}
        if default_engine not in self._infos:
            raise ValueError(f"default engine {default_engine!r} is not among {list(self._infos)}")
        self.default_engine = default_engine

    @property
    def engines(self) -> list[str]:
        return list(self._infos)

    @property
    def default(self) -> EngineInfo:
        return self._infos[self.default_engine]

    def infos(self) -> list[EngineInfo]:
        return list(self._infos.values())

    def info(self, engine: str) -> EngineInfo:
        try:
            return self._infos[engine]
        except KeyError:
            raise UnknownEngineError(
                f"engine {engine!r} is not served here; this service runs {', '.join(self._infos)}"
            ) from None

    def public_id(self, preset: Preset) -> str:
        """The id a client sees: qualified once there is more than one engine,
        bare (as before engines could be mixed) when there is one."""
        return preset.full_id if len(self._infos) > 1 else preset.voice_id

    def presets(self) -> list[Preset]:
        return [Preset(info, voice.id) for info in self._infos.values() for voice in info.voices]

    def find_preset(self, voice: str) -> Preset | None:
        """The preset `voice` names, or None when it names none (it may be a
        clone). A qualified id with an unknown engine or voice is refused."""
        engine, separator, rest = voice.partition(SEPARATOR)
        if separator and engine in self._infos:
            info = self._infos[engine]
            if rest in info.voice_ids():
                return Preset(info, rest)
            raise UnknownVoiceError(
                f"the {engine} engine has no voice {rest!r}; its voices: "
                f"{', '.join(sorted(info.voice_ids()))}. GET /v1/voices lists them."
            )
        offering = [info for info in self._infos.values() if voice in info.voice_ids()]
        if not offering:
            return None
        if len(offering) == 1:
            return Preset(offering[0], voice)
        if self.default_engine in (info.engine for info in offering):
            return Preset(self.default, voice)
        raise AmbiguousVoiceError(
            f"voice {voice!r} is offered by several engines; name one: "
            f"{', '.join(qualified(info.engine, voice) for info in offering)}"
        )

    def all_voice_ids(self) -> list[str]:
        return sorted(self.public_id(preset) for preset in self.presets())

    def cloning_engine(self, requested: str | None = None) -> EngineInfo:
        """The engine a new clone is made with: the one asked for, else the
        default engine if it can clone, else the first that can."""
        if requested is not None:
            info = self.info(requested)
            if not info.can_clone:
                raise cloning_unsupported(info.engine, self._cloners())
            return info
        if self.default.can_clone:
            return self.default
        for info in self._infos.values():
            if info.can_clone:
                return info
        raise cloning_unsupported(self.default_engine, [])

    def _cloners(self) -> list[str]:
        return [info.engine for info in self._infos.values() if info.can_clone]


def engine_for_openai_model(model: str, preferences: Mapping[str, list[str]], catalog: EngineCatalog) -> EngineInfo:
    """The engine an OpenAI model name speaks with: the first of its
    preferences this service runs; an unknown name gets the default engine,
    as OpenAI's clients send whatever model their user typed. An engine's
    own name or model id (GET /v1/models lists them) picks that engine."""
    for info in catalog.infos():
        if model in (info.engine, info.model):
            return info
    for engine in preferences.get(model, ()):
        if engine in catalog.engines:
            return catalog.info(engine)
    return catalog.default
