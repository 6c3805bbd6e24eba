"""VoiceCloner: reference bytes → a cloned voice and its sample, on the real eSpeak engine."""

import asyncio

import pytest

from tests.helpers.audio import decode, wav_bytes
from tests.unit.voices.local_graph import LocalSynthesizerCalls
from voicegraph.core.errors import AudioTooShortError, InvalidAudioError, PayloadTooLargeError
from voicegraph.core.settings import Settings
from voicegraph.engines.espeak import EspeakEngine
from voicegraph.voices.cloning import VoiceCloner

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


@pytest.fixture(scope="module")
def reference_wav():
    return wav_bytes(EspeakEngine().synthesize(SENTENCE * 2, "deep", "en-us", 1.0), 22050)


def clone(data, settings=None, **options):
    cloner = VoiceCloner(settings or Settings(), {"espeak": LocalSynthesizerCalls()})
    return asyncio.run(cloner.clone(data, "en-us", "espeak", **options))


def test_a_reference_becomes_an_espeak_voice_with_a_sample(reference_wav):
    reference = clone(reference_wav)
    assert reference.voice.engine == "espeak"
    assert 3.0 <= reference.speech_s <= reference.original_s
    pcm, rate = decode(reference.sample_wav)
    assert rate == 22050 and len(pcm) / rate > 1.0


def test_without_a_sample_none_is_made(reference_wav):
    assert clone(reference_wav, with_sample=False).sample_wav is None


@pytest.mark.parametrize(
    ("data", "settings", "error", "words"),
    [
        (b"", None, InvalidAudioError, "empty"),
        (b"x" * 2048, Settings(voices={"max_upload_bytes": 1024}), PayloadTooLargeError, "limit is 1024"),
        (b"not audio at all" * 100, None, InvalidAudioError, "WAV"),
    ],
)
def test_bad_references_are_refused_with_a_reason(data, settings, error, words):
    with pytest.raises(error, match=words):
        clone(data, settings)


def test_a_reference_shorter_than_the_minimum_is_refused():
    short = wav_bytes(EspeakEngine().synthesize("Hi.", "deep", "en-us", 1.0), 22050)
    with pytest.raises(AudioTooShortError):
        clone(short)
