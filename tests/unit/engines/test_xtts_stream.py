"""XTTS streaming on the tiny checkpoint: chunks decoded together as streams,
each piece's HiFi-GAN on a window of latents (WindowedVocoder)."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.helpers.xtts import make_prompts_matter, tiny_xtts_settings
from voicegraph.engines.base import ChunkRequest, Sampling
from voicegraph.engines.windowed_vocoder import LEFT_CONTEXT_FRAMES
from voicegraph.engines.xtts import XttsEngine

GREEDY = Sampling(top_k=1)
LONG = "A longer sentence, spoken in pieces as the stream goes on and on."


@pytest.fixture(scope="module")
def engine(tiny_xtts_dir, reference_clip):
    """Prompts that matter, as for the batch tests: chunks end at different
    steps and rows cannot be mixed up unnoticed."""
    settings = tiny_xtts_settings(tiny_xtts_dir, reference_clip)
    settings.xtts.warmup = False
    settings.xtts.tokens_per_char = 1.4  # about 60 tokens for LONG: several pieces
    settings.xtts.stream_chunk_tokens = 7
    return make_prompts_matter(XttsEngine(settings, num_threads=2))


def different_chunks(engine, reference_clip):
    from voicegraph.engines.xtts import read_reference

    clone = engine.clone(*read_reference(reference_clip))
    return [
        ChunkRequest("Hello there.", "Tiny Narrator", "en", 1.0, GREEDY),
        ChunkRequest(LONG, "narrator", "en", 1.3, GREEDY),
        ChunkRequest("Bonjour tout le monde.", clone, "fr", 0.7, GREEDY),
    ]


def joined(steps, index):
    return np.concatenate([step[index] for step in steps if step[index] is not None])


@pytest.mark.parametrize("every", [2, 20])
def test_streams_decoded_together_give_each_chunk_its_audio(engine, reference_clip, monkeypatch, every):
    monkeypatch.setattr(engine._options, "stream_chunk_tokens", every)
    chunks = different_chunks(engine, reference_clip)
    whole = engine.synthesize_batch(chunks)
    steps = list(engine.stream_batch(chunks))
    assert all(len(step) == len(chunks) for step in steps)
    for index, audio in enumerate(whole):
        np.testing.assert_allclose(joined(steps, index), audio, atol=1e-5)
    # Chunks end at their own step: a short one is None (ended) while a long one still speaks.
    ended_at = [next((n for n, step in enumerate(steps) if step[i] is None), len(steps)) for i in range(len(chunks))]
    assert ended_at[0] < ended_at[1]
    # Once ended, a chunk stays ended.
    for index, start in enumerate(ended_at):
        assert all(step[index] is None for step in steps[start:])


def test_a_stream_alone_sounds_as_the_plain_call(engine):
    pieces = list(engine.synthesize_stream(LONG, "narrator", "en", 1.0, GREEDY))
    assert len(pieces) >= 5 and all(len(piece) for piece in pieces)
    np.testing.assert_allclose(np.concatenate(pieces), engine.synthesize(LONG, "narrator", "en", 1.0, GREEDY), atol=1e-5)


def test_streams_that_sample_differently_stream_one_group_after_the_other(engine, reference_clip):
    chunks = different_chunks(engine, reference_clip)
    hotter = dataclasses.replace(chunks[0], sampling=Sampling(top_k=1, temperature=0.5))
    steps = list(engine.stream_batch([*chunks, hotter]))
    whole = engine.synthesize_batch([*chunks, hotter])
    for index, audio in enumerate(whole):
        np.testing.assert_allclose(joined(steps, index), audio, atol=1e-5)
    # The second group starts once the first has ended: nothing of it before.
    first_of_hotter = next(n for n, step in enumerate(steps) if step[3] is not None and len(step[3]))
    assert all(step[1] is None for step in steps[first_of_hotter:])


class CountedSteps:
    """Counts the GPT's forward passes: one per generated token (the prompt's included)."""

    def __init__(self, engine, monkeypatch):
        self.calls = 0
        inference = engine.model.gpt.gpt_inference
        real = inference.forward

        def forward(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(inference, "forward", forward)


def test_the_first_piece_comes_from_the_first_tokens(engine, monkeypatch):
    steps = CountedSteps(engine, monkeypatch)
    every = engine._options.stream_chunk_tokens
    stream = engine.synthesize_stream(LONG, "narrator", "en", 1.0, GREEDY)
    first = next(stream)
    # Generation runs ahead of the consumer by at most the queue (two steps of pieces).
    assert len(first) > 0 and steps.calls <= 3 * every + 1
    assert list(stream) and steps.calls > 5 * every


def test_closing_a_stream_stops_its_generation(engine, monkeypatch):
    steps = CountedSteps(engine, monkeypatch)
    stream = engine.synthesize_stream(LONG, "narrator", "en", 1.0, GREEDY)
    next(stream)
    stream.close()
    budget = engine._generation_kwargs(LONG, GREEDY)["max_new_tokens"]
    assert steps.calls <= 4 * engine._options.stream_chunk_tokens + 1 < budget
    # The model is free again: the next call is not stuck behind the closed stream.
    assert len(engine.synthesize("Hi.", "narrator", "en", 1.0, GREEDY)) > 0


def test_an_error_in_generation_reaches_the_consumer(engine, monkeypatch):
    def broken(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(engine.model.gpt.gpt_inference, "forward", broken)
    with pytest.raises(torch.OutOfMemoryError):
        list(engine.synthesize_stream("Hello.", "narrator", "en", 1.0, GREEDY))


@pytest.mark.parametrize("step, speed", [(1, 1.7), (3, 0.5), (7, 1.0), (20, 0.5)])
def test_windows_give_the_whole_decode_and_each_frame_is_decoded_about_once(engine, speed, step):
    latents = torch.randn(1, 61, 32, generator=torch.Generator().manual_seed(step))
    vocoder = engine._stream_vocoder(engine._voices["narrator"], speed)
    pieces = []
    with torch.inference_mode():
        for end in range(step, latents.shape[1] + step, step):
            piece = vocoder.piece(latents[:, :end], final=end >= latents.shape[1])
            if piece is not None:
                pieces.append(piece.numpy())
        whole = vocoder._decode(vocoder._upsample(latents)).reshape(-1).numpy()
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-5)
    # Each piece decodes its new frames plus a fixed window around them: linear
    # in the stream's length. Decoding all latents so far (coqui's
    # inference_stream) would be the sum of every prefix: quadratic.
    total_frames = len(whole) // 256
    assert vocoder.decoded_frames <= total_frames + len(pieces) * (LEFT_CONTEXT_FRAMES + vocoder._lookahead)
    if step == 7:
        prefixes = sum(min(end, 61) for end in range(step, 61 + step, step))
        assert vocoder.decoded_frames < prefixes * total_frames / 61 / 2
