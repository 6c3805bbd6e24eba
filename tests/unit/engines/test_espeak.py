from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.helpers.audio import median_f0, speech_seconds
from voicegraph.core.errors import UnknownVoiceError, UnsupportedLanguageError
from voicegraph.engines.espeak import PRESETS, EspeakEngine

SENTENCE = "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."


@pytest.fixture(scope="module")
def engine():
    return EspeakEngine()


def test_info_describes_the_engine(engine):
    info = engine.info()
    assert info.engine == "espeak"
    assert info.sample_rate == 22050
    assert {"en", "en-us", "en-gb-x-rp", "de", "fr", "es"} <= set(info.languages)
    assert "en-gb" in info.languages  # listed by a voice, resolved to that voice
    assert {v.id for v in info.voices} == {p.id for p in PRESETS}
    assert info.chunk_chars_for("en-us") > 0


def test_synthesize_gives_speech(engine):
    pcm = engine.synthesize(SENTENCE, "default", "en-us", 1.0)
    assert pcm.dtype == np.float32
    assert np.max(np.abs(pcm)) <= 1.0
    seconds = len(pcm) / 22050
    # 16 words at a normal rate: about 2.5 words per second, give or take.
    assert 3.0 < seconds < 9.0
    assert speech_seconds(pcm, 22050) > 0.5 * seconds
    assert 70 < median_f0(pcm, 22050) < 160


def test_presets_sound_clearly_different(engine):
    f0 = {p.id: median_f0(engine.synthesize(SENTENCE, p.id, "en-us", 1.0), 22050) for p in PRESETS}
    length = {p.id: len(engine.synthesize(SENTENCE, p.id, "en-us", 1.0)) for p in PRESETS}
    assert f0["deep"] < 0.85 * f0["default"]
    assert f0["bright"] > 1.6 * f0["default"]
    assert f0["soft"] > 1.3 * f0["default"]
    assert length["brisk"] < 0.85 * length["default"]
    assert length["soft"] > 1.1 * length["default"]


def test_speed_changes_duration(engine):
    normal = len(engine.synthesize(SENTENCE, "default", "en-us", 1.0))
    fast = len(engine.synthesize(SENTENCE, "default", "en-us", 2.0))
    slow = len(engine.synthesize(SENTENCE, "default", "en-us", 0.5))
    assert fast < 0.7 * normal < slow * 0.7


@pytest.mark.parametrize("language", ["EN_US", "de", "fr", "es"])
def test_languages_are_spoken(engine, language):
    pcm = engine.synthesize("Eins zwei drei, un deux trois.", "default", language, 1.0)
    assert speech_seconds(pcm, 22050) > 0.5


def test_unknown_voice_and_language_are_input_errors(engine):
    with pytest.raises(UnknownVoiceError, match="available voices"):
        engine.synthesize("hi", "nobody", "en-us", 1.0)
    with pytest.raises(UnsupportedLanguageError, match="Did you mean"):
        engine.synthesize("hi", "default", "en-uss", 1.0)


# eSpeak NG varies a chunk's length by a few hundred samples from call to call
# (well under 1%), so audio is compared by length and pitch, not sample by sample.
def _close(a: float, b: float, tolerance: float = 0.01) -> bool:
    return abs(a - b) <= tolerance * max(a, b)


def test_stream_yields_the_whole_chunk(engine):
    whole = engine.synthesize(SENTENCE, "bright", "en-us", 1.0)
    pieces = list(engine.synthesize_stream(SENTENCE, "bright", "en-us", 1.0))
    streamed = np.concatenate(pieces)
    assert streamed.dtype == np.float32
    assert _close(len(streamed), len(whole))
    assert _close(median_f0(streamed, 22050), median_f0(whole, 22050), 0.05)


def test_concurrent_calls_are_serialised(engine):
    """The C library has one global voice: threads must not mix each other's settings."""
    def measure(voice: str) -> tuple[int, float]:
        pcm = engine.synthesize(SENTENCE, voice, "en-us", 1.0)
        return len(pcm), median_f0(pcm, 22050)

    expected = {p.id: measure(p.id) for p in PRESETS}
    voices = [p.id for p in PRESETS] * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(measure, voices))
    for voice, (length, f0) in zip(voices, results):
        assert _close(length, expected[voice][0]), voice
        assert _close(f0, expected[voice][1], 0.05), voice


READING = (
    "This is a recording of my speaking voice. I read a few plain sentences, "
    "slowly and clearly, so that the service can learn how I sound."
)


@pytest.mark.parametrize("preset, variant_kind", [("deep", "m"), ("soft", "f"), ("bright", "f")])
def test_a_clone_matches_its_references_pitch(engine, preset, variant_kind):
    reference = engine.synthesize(READING, preset, "en-us", 1.0)
    clone = engine.clone(reference, 22050)
    assert (clone.engine, clone.method) == ("espeak", "espeak-parametric")
    assert clone.params["variant"].startswith(variant_kind)
    assert 0 <= clone.params["pitch"] <= 100 and 0 <= clone.params["range"] <= 100
    spoken = engine.synthesize(SENTENCE, clone, "en-us", 1.0)
    assert median_f0(spoken, 22050) == pytest.approx(median_f0(reference, 22050), rel=0.15)


def test_a_clone_follows_its_references_speaking_rate(engine):
    slow = engine.clone(engine.synthesize(READING, "default", "en-us", 0.8), 22050)
    fast = engine.clone(engine.synthesize(READING, "default", "en-us", 1.6), 22050)
    assert fast.params["rate"] > 1.4 * slow.params["rate"]
    slow_s = len(engine.synthesize(SENTENCE, slow, "en-us", 1.0))
    fast_s = len(engine.synthesize(SENTENCE, fast, "en-us", 1.0))
    assert fast_s < 0.75 * slow_s


def test_a_clone_from_another_engine_is_refused(engine):
    from voicegraph.core.errors import IncompatibleVoiceError
    from voicegraph.engines import ClonedVoice

    foreign = ClonedVoice(engine="xtts", model="xtts_v2", method="xtts-conditioning")
    with pytest.raises(IncompatibleVoiceError, match="clone it again"):
        engine.synthesize(SENTENCE, foreign, "en-us", 1.0)
