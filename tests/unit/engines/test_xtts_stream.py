"""XTTS streaming on the tiny checkpoint: pieces from a window of latents
(WindowedVocoder) through the model's own HiFi-GAN."""

import numpy as np
import pytest
import torch

from tests.helpers.xtts import tiny_xtts_settings
from voicegraph.engines.base import Sampling
from voicegraph.engines.windowed_vocoder import LEFT_CONTEXT_FRAMES
from voicegraph.engines.xtts import XttsEngine

GREEDY = Sampling(top_k=1)
TEXT = "A longer sentence, spoken in pieces as the stream goes on and on."


@pytest.fixture(scope="module")
def engine(tiny_xtts_dir, reference_clip):
    settings = tiny_xtts_settings(tiny_xtts_dir, reference_clip)
    settings.xtts.warmup = False
    settings.xtts.tokens_per_char = 1.4  # about 90 tokens: several pieces
    settings.xtts.stream_chunk_tokens = 7
    return XttsEngine(settings, num_threads=2)


def generated_latents(engine, text, voice):
    """What the stream's generation gives for `text`, all at once (greedy, so the same)."""
    gpt = engine.model.gpt
    conditioning = engine._voices[voice]
    with torch.inference_mode():
        prompt = gpt.compute_embeddings(conditioning.gpt_cond_latent, engine._text_tokens(text, "en"))
        generated = gpt.get_generator(
            fake_inputs=prompt, do_sample=True, num_beams=1, num_return_sequences=1, output_attentions=False,
            output_hidden_states=True, return_dict_in_generate=True, **engine._generation_kwargs(text, GREEDY),
        )
        return torch.cat([latent for _, latent in generated])[None]


def decoded_at_once(engine, latents, voice, speed):
    vocoder = engine._stream_vocoder(engine._voices[voice], speed)
    with torch.inference_mode():
        return vocoder._decode(vocoder._upsample(latents)).reshape(-1).numpy().clip(-1.0, 1.0)


@pytest.mark.parametrize("speed", [1.0, 0.5, 1.7])
@pytest.mark.parametrize("voice", ["Tiny Narrator", "narrator"])
def test_the_pieces_joined_are_the_whole_stream_decoded_at_once(engine, speed, voice):
    pieces = list(engine.synthesize_stream(TEXT, voice, "en", speed, GREEDY))
    assert len(pieces) >= 5
    whole = decoded_at_once(engine, generated_latents(engine, TEXT, voice), voice, speed)
    joined = np.concatenate(pieces)
    assert len(joined) == len(whole)
    np.testing.assert_allclose(joined, whole, atol=1e-5)


@pytest.mark.parametrize("step", [1, 3, 7, 20])
def test_any_piece_size_gives_the_same_audio_and_decodes_each_frame_about_once(engine, step):
    latents = generated_latents(engine, TEXT, "narrator")
    vocoder = engine._stream_vocoder(engine._voices["narrator"], 1.0)
    pieces = []
    with torch.inference_mode():
        for end in range(step, latents.shape[1] + step, step):
            piece = vocoder.piece(latents[:, :end], final=end >= latents.shape[1])
            if piece is not None:
                pieces.append(piece.numpy().clip(-1.0, 1.0))
    whole = decoded_at_once(engine, latents, "narrator", 1.0)
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)
    # Each piece decodes its new frames plus a fixed window around them: linear
    # in the stream's length. Decoding all latents so far (coqui's
    # inference_stream) would be the sum of every prefix: quadratic.
    total_frames = len(whole) // 256
    window = LEFT_CONTEXT_FRAMES + vocoder._lookahead
    assert vocoder.decoded_frames <= total_frames + len(pieces) * window
    if step == 7:
        every_prefix = sum(min(end, latents.shape[1]) for end in range(step, latents.shape[1] + step, step))
        assert vocoder.decoded_frames < every_prefix * total_frames / latents.shape[1] / 2


def test_the_first_piece_comes_from_the_first_tokens(engine, monkeypatch):
    """The first piece is out before the rest is generated: the generator has
    given only the first `stream_chunk_tokens` tokens when it arrives."""
    gpt = engine.model.gpt
    pulled = []
    real = gpt.get_generator

    def counting(**kwargs):
        for step in real(**kwargs):
            pulled.append(1)
            yield step

    monkeypatch.setattr(gpt, "get_generator", counting)
    stream = engine.synthesize_stream(TEXT, "narrator", "en", 1.0, GREEDY)
    first = next(stream)
    assert len(pulled) == engine._options.stream_chunk_tokens and len(first) > 0
    rest = list(stream)
    assert len(pulled) > 5 * engine._options.stream_chunk_tokens and rest
