"""The engine interface every Synthesizer replica holds one of."""

from __future__ import annotations

import abc
import difflib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from voicegraph.core.errors import (
    CloningUnsupportedError,
    IncompatibleVoiceError,
    UnknownVoiceError,
    UnsupportedLanguageError,
)
from voicegraph.text.language import canonical_language
from voicegraph.text.words import WordTime, estimate_word_times


def resolve_language(language: str, supported: Iterable[str], engine: str) -> str:
    """The supported code for `language`, or a 4xx that suggests close matches."""
    code = canonical_language(language)
    supported = list(supported)
    if code in supported:
        return code
    variants = [s for s in supported if s.split("-")[0] == code]
    if len(variants) == 1:
        return variants[0]  # "en" on an engine or voice that knows only "en-us"
    base = code.split("-")[0]
    if base in supported and not any(s.startswith(base + "-") for s in supported):
        return base  # "en-us" on an engine that knows only "en", no regional variants
    close = difflib.get_close_matches(code, supported, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnsupportedLanguageError(
        f"language {language!r} is not supported by the {engine} engine.{hint} "
        "GET /v1/voices lists the supported languages."
    )


def check_voice(voice: str, known: Iterable[str]) -> str:
    known = sorted(known)
    if voice not in known:
        raise UnknownVoiceError(
            f"voice {voice!r} does not exist; available voices: {', '.join(known)}. "
            "GET /v1/voices lists them."
        )
    return voice


@dataclass(frozen=True)
class Sampling:
    """Per-request sampling overrides; None keeps the model's published default.
    Engines that do not sample (eSpeak) ignore them."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    length_penalty: float | None = None


@dataclass(frozen=True)
class ClonedVoice:
    """A voice cloned from reference audio: all an engine needs to speak in it.

    Small enough (XTTS: ~130 KB of conditioning) to travel with every chunk,
    so any Synthesizer replica can speak any cloned voice.
    """

    engine: str
    model: str
    method: str  # how it was made, e.g. "xtts-conditioning", "espeak-parametric"
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, float | int | str] = field(default_factory=dict)


# A preset's id, or a cloned voice.
Voice = str | ClonedVoice


def cloning_unsupported(engine: str, cloners: Sequence[str] = ()) -> CloningUnsupportedError:
    where = (
        f"send engine {' or '.join(cloners)} to clone with it"
        if cloners
        else "run the service with an engine that can (engines: [xtts], VG_ENGINES=xtts)"
    )
    return CloningUnsupportedError(
        f"the {engine} engine cannot clone a voice from a recording (its voices are trained "
        f"models); {where}, or pick a voice from GET /v1/voices"
    )


def check_compatible(voice: ClonedVoice, engine: str, model: str, voice_id: str = "this voice") -> None:
    """Conditioning is only meaningful to the engine and model that computed it."""
    if (voice.engine, voice.model) != (engine, model):
        raise IncompatibleVoiceError(
            f"{voice_id} was cloned with engine {voice.engine} (model {voice.model}), but this "
            f"service runs engine {engine} (model {model}); clone it again from its reference audio"
        )


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    name: str
    description: str
    kind: str = "preset"
    # A voice that speaks one language at its own rate (Piper); None: the engine's.
    language: str | None = None
    sample_rate: int | None = None
    # The model a replica loads to speak this voice (Piper: its file), so
    # its chunks go to replicas that hold it; None: nothing per voice.
    model_key: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What the ingress needs to validate a request without loading the engine."""

    engine: str
    model: str
    sample_rate: int
    languages: tuple[str, ...]
    voices: tuple[VoiceInfo, ...]
    default_language: str
    # Characters per chunk, by language; "*" is the fallback.
    chunk_chars: dict[str, int] = field(default_factory=dict)

    # Whether the engine can clone a voice from reference audio.
    can_clone: bool = True
    # Whether a chunk's audio can come in pieces as it is made (XTTS): a
    # stream then sends its first chunk's first words before the rest exists.
    streams_within_chunks: bool = False

    def chunk_chars_for(self, language: str) -> int:
        return self.chunk_chars.get(language, self.chunk_chars["*"])

    def voice_ids(self) -> set[str]:
        return {voice.id for voice in self.voices}

    def _preset(self, voice: Voice) -> VoiceInfo | None:
        if isinstance(voice, ClonedVoice):
            return None
        return next((info for info in self.voices if info.id == voice), None)

    def sample_rate_for(self, voice: Voice) -> int:
        """The rate `voice`'s audio comes at: its own where it has one."""
        preset = self._preset(voice)
        return preset.sample_rate if preset and preset.sample_rate else self.sample_rate

    def model_key_for(self, voice: Voice) -> str | None:
        preset = self._preset(voice)
        return preset.model_key if preset else None

    def languages_for(self, voice: Voice) -> tuple[str, ...]:
        preset = self._preset(voice)
        return (preset.language,) if preset and preset.language else self.languages


@dataclass(frozen=True)
class ChunkRequest:
    """One chunk to speak, with everything that shapes its audio."""

    text: str
    voice: Voice
    language: str
    speed: float = 1.0
    sampling: Sampling = Sampling()
    # The request it belongs to, for log lines about a batch: those run
    # outside any one request's context, so Serve cannot tag them itself.
    request_id: str = ""


@dataclass(frozen=True)
class TimedAudio:
    """A chunk's audio and when each of its words (`text.split()`'s) is said,
    in seconds from the start of `pcm`."""

    pcm: np.ndarray
    words: tuple[WordTime, ...]
    # True where the times are spread by spoken weight, not measured by the engine.
    words_estimated: bool


class Engine(abc.ABC):
    """Text → mono float32 PCM in [-1, 1] at `sample_rate`.

    Engines raise `voicegraph.core.errors.InvalidRequestError` subclasses for input
    they cannot speak (never retried) and anything else for faults (retried).
    """

    # Chunks this engine decodes together by default (1: it cannot batch).
    default_batch_size = 1

    @abc.abstractmethod
    def info(self) -> EngineInfo: ...

    @abc.abstractmethod
    def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray: ...

    @abc.abstractmethod
    def clone(self, pcm: np.ndarray, rate: int) -> ClonedVoice:
        """Reference speech (mono float32, silence trimmed) → a voice this engine speaks."""

    def synthesize_batch(self, chunks: Sequence[ChunkRequest]) -> list[np.ndarray]:
        """Each chunk's audio, as `synthesize` would speak it alone. Engines that
        decode chunks together (XTTS) override this; the rest take them in turn."""
        return [self.synthesize(c.text, c.voice, c.language, c.speed, c.sampling) for c in chunks]

    def synthesize_timed(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> TimedAudio:
        """`synthesize`, with its words' times. Engines that know when they
        say each word override this; for the rest they are estimated over
        the whole audio."""
        pcm = self.synthesize(text, voice, language, speed, sampling)
        seconds = len(pcm) / self.info().sample_rate_for(voice)
        return TimedAudio(pcm, tuple(estimate_word_times(text, 0.0, seconds)), words_estimated=True)

    def synthesize_stream(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> Iterator[np.ndarray]:
        # Engines whose decoder produces audio incrementally (XTTS) override this;
        # for the rest one piece is the whole chunk.
        yield self.synthesize(text, voice, language, speed, sampling)

    def stream_batch(self, chunks: Sequence[ChunkRequest]) -> Iterator[list[np.ndarray | None]]:
        """Chunks as streams: steps with each chunk's new audio (empty: nothing
        yet), None for a chunk once it has ended. Engines that decode chunks
        together (XTTS) override this; the rest stream them in turn."""
        ended = [False] * len(chunks)
        for index, chunk in enumerate(chunks):
            for piece in self.synthesize_stream(chunk.text, chunk.voice, chunk.language, chunk.speed, chunk.sampling):
                yield [None if done else piece if i == index else piece[:0] for i, done in enumerate(ended)]
            ended[index] = True

    def load_voice(self, model_key: str) -> int:
        """Load a voice model ahead of its chunks; its generation, for
        `drop_voice`. Only engines whose voices carry a `model_key` load any."""
        raise NotImplementedError(f"{type(self).__name__} has no voice models to load")

    def drop_voice(self, model_key: str, generation: int) -> None:  # noqa: B027 (see load_voice)
        """Let go of a voice model `load_voice` loaded."""

    def voice_model_stats(self) -> dict:
        """Voice models held (least recently used first), loads and evictions
        so far; empty for engines without a model per voice."""
        return {}

    def check_health(self) -> None:  # noqa: B027 (optional: most engines have nothing to check)
        """Raise if this engine can no longer work (a broken GPU context)."""
