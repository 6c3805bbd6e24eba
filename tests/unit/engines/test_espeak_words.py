"""Word times from eSpeak's own word events, on the real library."""


import numpy as np
import pytest

from tests.helpers.audio import assert_well_timed, speech_end_s
from voicegraph.engines.base import Engine
from voicegraph.engines.espeak import EspeakEngine

RATE = 22050
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    # A pause after the comma; "in the" eSpeak says as one word, with one event.
    "Put it in the box, and then go to the store.",
    "Hello wörld, it's 7:45 a.m. in the café. Second sentence here!",
    "One",
]


@pytest.fixture(scope="module")
def engine():
    return EspeakEngine()


@pytest.mark.parametrize("text", TEXTS)
def test_words_are_timed_by_the_engine(engine, text):
    timed = engine.synthesize_timed(text, "default", "en-us", 1.0)
    assert not timed.words_estimated
    assert [w.word for w in timed.words] == text.split()
    assert_well_timed(timed.words, len(timed.pcm) / RATE)
    assert all(w.end_s > w.start_s for w in timed.words)  # every word here is said
    assert timed.words[-1].end_s == pytest.approx(speech_end_s(timed.pcm, RATE), abs=0.05)


def test_a_pause_is_no_part_of_the_word_before_it(engine):
    timed = engine.synthesize_timed("Put it in the box, and then go.", "default", "en-us", 1.0)
    box, and_ = timed.words[4], timed.words[5]
    assert box.word == "box,"
    assert and_.start_s - box.end_s > 0.1  # eSpeak's comma pause, left between them
    assert not np.any(timed.pcm[round(box.end_s * RATE) + 1 : round(and_.start_s * RATE) - 1])


def test_words_move_with_speed(engine):
    text = TEXTS[0]
    normal = engine.synthesize_timed(text, "default", "en-us", 1.0)
    fast = engine.synthesize_timed(text, "default", "en-us", 2.0)
    for at_normal, at_fast in list(zip(normal.words, fast.words))[1:]:
        assert at_fast.start_s < 0.7 * at_normal.start_s
    assert fast.words[-1].end_s < 0.7 * normal.words[-1].end_s
    assert fast.words[-1].end_s == pytest.approx(speech_end_s(fast.pcm, RATE), abs=0.05)


def test_cloned_voices_are_timed_too(engine):
    reference = engine.synthesize(TEXTS[0], "deep", "en-us", 1.0)
    voice = engine.clone(reference, RATE)
    timed = engine.synthesize_timed(TEXTS[1], voice, "en-us", 1.0)
    assert [w.word for w in timed.words] == TEXTS[1].split()
    assert_well_timed(timed.words, len(timed.pcm) / RATE)


def test_nothing_said_is_timed_as_nothing(engine):
    assert engine.synthesize_timed("", "default", "en-us", 1.0).words == ()


def test_the_default_estimates_over_the_whole_audio(engine):
    # Engine's own synthesize_timed, on an engine that overrides it.
    timed = Engine.synthesize_timed(engine, TEXTS[0], "default", "en-us", 1.0)
    assert timed.words_estimated
    assert [w.word for w in timed.words] == TEXTS[0].split()
    assert (timed.words[0].start_s, timed.words[-1].end_s) == (0.0, len(timed.pcm) / RATE)
    assert_well_timed(timed.words, len(timed.pcm) / RATE)
