"""eSpeak NG through the library and data shipped in the espeakng-loader wheel.

No system package and no weights: the default engine for laptops and CI.
The C library keeps global state (one voice, one callback, one output buffer),
so every call in a process goes through one lock.
"""

from __future__ import annotations

import ctypes
import re
import threading
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from voicegraph.audio.reference import median_f0, voice_stats
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
    resolve_language,
)
from voicegraph.text.words import WordTime, estimate_word_times, trim_silence

_AUDIO_OUTPUT_SYNCHRONOUS = 2
# Audio per synthesis callback. eSpeak's default, 60 ms, costs one Python
# callback (ctypes to numpy) per 60 ms of speech; with a second per callback
# (and one pass less converting to float), the engine took 553 ms instead of
# 610 for the 13,000-character text, with the same samples.
_BUFFER_MS = 1000
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1
# Quieter than this share of the loudest is no sound (-60 dB): eSpeak's
# pauses are exact zeros, and its quietest speech is far above it.
_QUIET = 0.001
_WORD = re.compile(r"\S+")
# Where each word eSpeak says starts: (character index in the text, millisecond in the audio).
_WordStarts = list[tuple[int, int]]
_MIN_RATE, _MAX_RATE = 80, 500  # words per minute eSpeak NG accepts
# eSpeak has no model context limit; this size keeps chunks sentence-sized
# so a long text fans out over every Synthesizer replica.
_CHUNK_CHARS = 400
_MODEL = "espeak-ng-1.52"

# Cloning picks a variant by the reference's median F0 (eSpeak's male variants
# sit lower than its female ones), then fits the pitch parameter within it.
_CLONE_VARIANTS = ((110.0, "m3"), (165.0, "m1"), (220.0, "f2"), (float("inf"), "f3"))
_CALIBRATION_TEXT = (
    "The quick brown fox jumps over the lazy dog, then it runs far away into the quiet forest."
)
_CALIBRATION_PITCHES = (0, 20, 40, 60, 80, 100)
_BASE_RATE, _BASE_RANGE = 175, 50


@dataclass(frozen=True)
class EspeakPreset:
    id: str
    name: str
    description: str
    variant: str | None  # eSpeak voice variant appended as "+variant"
    pitch: int  # 0-100, eSpeak default 50
    pitch_range: int  # 0-100, eSpeak default 50
    rate: int  # words per minute at speed 1.0

    def voice_info(self) -> VoiceInfo:
        return VoiceInfo(id=self.id, name=self.name, description=self.description)


PRESETS: tuple[EspeakPreset, ...] = (
    EspeakPreset("default", "Default", "Neutral mid-pitched voice", None, 50, 50, 175),
    EspeakPreset("deep", "Deep", "Low, slower male voice", "m3", 22, 35, 155),
    EspeakPreset("bright", "Bright", "High, lively female voice", "f3", 70, 65, 185),
    EspeakPreset("soft", "Soft", "Calm, slow female voice", "f2", 55, 25, 145),
    EspeakPreset("brisk", "Brisk", "Fast narrator", "m1", 48, 55, 225),
)


class _EspeakVoice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # (priority byte, NUL-terminated code)*, then 0
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _EspeakEvent(ctypes.Structure):
    """speak_lib.h's espeak_EVENT."""

    _fields_ = [
        ("type", ctypes.c_int),  # espeak_EVENT_TYPE, an enum
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text, from 1
        ("length", ctypes.c_int),  # of the word, in characters
        ("audio_position", ctypes.c_int),  # milliseconds from the start of the audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
)


class _Library:
    """The process-wide libespeak-ng handle, initialised once."""

    _instance: _Library | None = None
    lock = threading.Lock()

    def __init__(self):
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate})")
        self._buffers: list[np.ndarray] = []
        self._word_starts: _WordStarts = []
        # Kept on self: ctypes must not garbage-collect a callback C still holds.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        self.voice_by_language = self._voices_by_language()

    @classmethod
    def get(cls) -> _Library:
        with cls.lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, samples, count, events) -> int:
        if count > 0:
            self._buffers.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        index = 0
        while events and (event := events[index]).type != _EVENT_LIST_TERMINATED:
            if event.type == _EVENT_WORD:
                self._word_starts.append((event.text_position - 1, event.audio_position))
            index += 1
        return 0

    def _voices_by_language(self) -> dict[str, str]:
        """Language code → identifier of the voice that lists it first."""
        best: dict[str, tuple[int, str]] = {}
        voices = self.lib.espeak_ListVoices(None)
        index = 0
        while voices[index]:
            voice = voices[index].contents
            address = voice.languages
            offset = 0
            while (priority := ctypes.c_ubyte.from_address(address + offset).value) != 0:
                code = ctypes.string_at(address + offset + 1).decode("ascii").lower()
                identifier = voice.identifier.decode("ascii")
                if code not in best or priority < best[code][0]:
                    best[code] = (priority, identifier)
                offset += len(code) + 2
            index += 1
        return {code: identifier for code, (_, identifier) in sorted(best.items())}

    def synthesize(self, voice_name: str, text: str, params: dict[int, int]) -> tuple[np.ndarray, _WordStarts]:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice_name.encode("ascii")) != 0:
                raise RuntimeError(f"eSpeak rejected voice {voice_name!r}")
            for parameter, value in params.items():
                self.lib.espeak_SetParameter(parameter, value, 0)
            self._buffers, self._word_starts = [], []
            data = text.encode("utf-8") + b"\0"
            status = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
            buffers, self._buffers = self._buffers, []
            word_starts, self._word_starts = self._word_starts, []
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        if not buffers:
            return np.zeros(0, dtype=np.float32), word_starts
        pcm = np.concatenate(buffers).astype(np.float32)
        pcm *= 1.0 / 32768.0  # int16 over 32768 is within [-1, 1) already
        return pcm, word_starts


@dataclass(frozen=True)
class _Calibration:
    """What one variant sounds like, measured with the same analysis as references."""

    pitches: np.ndarray  # eSpeak pitch parameter values…
    f0s: np.ndarray  # …and the median F0 (Hz) each produced, increasing
    syllables_per_s: float  # at _BASE_RATE
    range_semitones: float  # at _BASE_RANGE


class EspeakEngine(Engine):
    def __init__(self):
        self._library = _Library.get()
        self._presets = {preset.id: preset for preset in PRESETS}
        self._calibrations: dict[str, _Calibration] = {}

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="espeak",
            model=_MODEL,
            sample_rate=self._library.sample_rate,
            languages=tuple(self._library.voice_by_language),
            voices=tuple(preset.voice_info() for preset in PRESETS),
            default_language="en-us",
            chunk_chars={"*": _CHUNK_CHARS},
        )

    def _voice_settings(self, voice: Voice) -> tuple[str | None, int, int, int]:
        """(variant, pitch, range, words per minute) of a preset or a cloned voice."""
        if isinstance(voice, ClonedVoice):
            check_compatible(voice, "espeak", _MODEL)
            p = voice.params
            return str(p["variant"]), int(p["pitch"]), int(p["range"]), int(p["rate"])
        preset = self._presets[check_voice(voice, self._presets)]
        return preset.variant, preset.pitch, preset.pitch_range, preset.rate

    def _speak(self, text: str, voice: Voice, language: str, speed: float) -> tuple[np.ndarray, _WordStarts]:
        variant, pitch, pitch_range, base_rate = self._voice_settings(voice)
        language = resolve_language(language, self._library.voice_by_language, "espeak")
        identifier = self._library.voice_by_language[language]
        voice_name = f"{identifier}+{variant}" if variant else identifier
        rate = int(round(min(max(base_rate * speed, _MIN_RATE), _MAX_RATE)))
        params = {
            _PARAM_RATE: rate,
            _PARAM_PITCH: pitch,
            _PARAM_RANGE: pitch_range,
            _PARAM_VOLUME: 100,
        }
        return self._library.synthesize(voice_name, text, params)

    def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        return self._speak(text, voice, language, speed)[0]

    def synthesize_timed(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> TimedAudio:
        pcm, word_starts = self._speak(text, voice, language, speed)
        words = _word_times(text, word_starts, pcm, self._library.sample_rate)
        return TimedAudio(pcm, tuple(words), words_estimated=not word_starts)

    def clone(self, pcm: np.ndarray, rate: int) -> ClonedVoice:
        """Parametric cloning: eSpeak cannot copy a timbre, but it can match the
        reference's pitch, pitch range and speaking rate, each fitted against
        eSpeak's own measured output rather than a guessed formula."""
        stats = voice_stats(pcm, rate)
        variant = next(name for limit, name in _CLONE_VARIANTS if stats.f0_median < limit)
        calibration = self._calibration(variant)
        pitch = float(np.interp(stats.f0_median, calibration.f0s, calibration.pitches))
        pitch_range = _BASE_RANGE * stats.range_semitones() / calibration.range_semitones
        words_per_minute = _BASE_RATE * stats.syllables_per_s / calibration.syllables_per_s
        return ClonedVoice(
            engine="espeak",
            model=_MODEL,
            method="espeak-parametric",
            arrays={
                "reference_stats": np.array(
                    [stats.f0_median, stats.f0_low, stats.f0_high, stats.syllables_per_s],
                    dtype=np.float32,
                )
            },
            params={
                "variant": variant,
                "pitch": int(round(pitch)),
                "range": int(round(min(max(pitch_range, 0), 100))),
                "rate": int(round(min(max(words_per_minute, _MIN_RATE), _MAX_RATE))),
            },
        )

    def _calibration(self, variant: str) -> _Calibration:
        # eSpeak's pitch parameter is a 0-100 scale whose Hz depend on the
        # variant: measure each variant once, then interpolate.
        if variant not in self._calibrations:
            name = f"{self._library.voice_by_language['en-us']}+{variant}"
            rate = self._library.sample_rate

            def speak(pitch: int):
                params = {
                    _PARAM_RATE: _BASE_RATE, _PARAM_PITCH: pitch,
                    _PARAM_RANGE: _BASE_RANGE, _PARAM_VOLUME: 100,
                }
                return self._library.synthesize(name, _CALIBRATION_TEXT, params)[0]

            f0s = np.array([median_f0(speak(p), rate) for p in _CALIBRATION_PITCHES])
            base = voice_stats(speak(50), rate)
            self._calibrations[variant] = _Calibration(
                pitches=np.array(_CALIBRATION_PITCHES, dtype=np.float64),
                # np.interp needs increasing x; measurement noise must not break that.
                f0s=np.maximum.accumulate(f0s),
                syllables_per_s=base.syllables_per_s,
                range_semitones=max(base.range_semitones(), 0.5),
            )
        return self._calibrations[variant]


def _word_times(text: str, word_starts: _WordStarts, pcm: np.ndarray, rate: int) -> list[WordTime]:
    """The words of `text` timed by eSpeak's word events: each runs from its
    first event to the next timed word's, less the silence at its end (the
    pause after a comma is no part of the word). Words eSpeak gives no event
    (it says "in the" as one) share their timed neighbour's span by weight."""
    words = list(_WORD.finditer(text))
    ends = [word.end() for word in words]
    starts: dict[int, float] = {}
    for position, milliseconds in word_starts:
        # An event inside a word ("7:45" is three) or in the space before it times that word.
        index = bisect_right(ends, position)
        if index < len(words):
            starts.setdefault(index, milliseconds / 1000)
    audio_end = len(pcm) / rate
    timed = sorted(starts)
    if not timed or timed[0] != 0:
        starts[0] = 0.0
        timed.insert(0, 0)
    spans: list[WordTime] = []
    for begin, following in zip(timed, [*timed[1:], len(words)]):
        # Never before the words already timed, nor past the audio, whatever an event says.
        start = min(max(starts[begin], spans[-1].end_s if spans else 0.0), audio_end)
        end = starts[following] if following < len(words) else audio_end
        run = " ".join(word[0] for word in words[begin:following])
        spans.extend(estimate_word_times(run, start, max(start, min(end, audio_end))))
    return trim_silence(spans, pcm, rate, _QUIET)

