"""eSpeak NG through the library and data shipped in the espeakng-loader wheel.

No system package and no weights: the default engine for laptops and CI.
The C library keeps global state (one voice, one callback, one output buffer),
so every call in a process goes through one lock.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from deployments.engines.base import (
    Engine,
    EngineInfo,
    Sampling,
    VoiceInfo,
    check_voice,
    resolve_language,
)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_MIN_RATE, _MAX_RATE = 80, 500  # words per minute eSpeak NG accepts
# eSpeak has no model context limit; this size keeps chunks sentence-sized
# so a long text fans out over every Synthesizer replica.
_CHUNK_CHARS = 400


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


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
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
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate})")
        self._buffers: list[np.ndarray] = []
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

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._buffers.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
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

    def synthesize(self, voice_name: str, text: str, params: dict[int, int]) -> np.ndarray:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice_name.encode("ascii")) != 0:
                raise RuntimeError(f"eSpeak rejected voice {voice_name!r}")
            for parameter, value in params.items():
                self.lib.espeak_SetParameter(parameter, value, 0)
            self._buffers = []
            data = text.encode("utf-8") + b"\0"
            status = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
            buffers, self._buffers = self._buffers, []
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")
        if not buffers:
            return np.zeros(0, dtype=np.float32)
        return (np.concatenate(buffers).astype(np.float32) / 32768.0).clip(-1.0, 1.0)


class EspeakEngine(Engine):
    def __init__(self):
        self._library = _Library.get()
        self._presets = {preset.id: preset for preset in PRESETS}

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine="espeak",
            model="espeak-ng-1.52",
            sample_rate=self._library.sample_rate,
            languages=tuple(self._library.voice_by_language),
            voices=tuple(preset.voice_info() for preset in PRESETS),
            default_language="en-us",
            chunk_chars={"*": _CHUNK_CHARS},
        )

    def synthesize(
        self, text: str, voice: str, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        preset = self._presets[check_voice(voice, self._presets)]
        language = resolve_language(language, self._library.voice_by_language, "espeak")
        identifier = self._library.voice_by_language[language]
        voice_name = f"{identifier}+{preset.variant}" if preset.variant else identifier
        rate = int(round(min(max(preset.rate * speed, _MIN_RATE), _MAX_RATE)))
        params = {
            _PARAM_RATE: rate,
            _PARAM_PITCH: preset.pitch,
            _PARAM_RANGE: preset.pitch_range,
            _PARAM_VOLUME: 100,
        }
        return self._library.synthesize(voice_name, text, params)
