"""The XTTS engine on a tiny random checkpoint: the real loading and inference code."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.helpers.xtts import make_prompts_matter, tiny_xtts_settings
from voicegraph.core.errors import ReplicaFaultError, UnknownVoiceError, UnsupportedLanguageError
from voicegraph.engines.base import ChunkRequest, Sampling
from voicegraph.engines.synthesizer import Synthesizer
from voicegraph.engines.xtts import XttsEngine, is_fatal_cuda_error

HOP_SECONDS = 1024 / 22050  # audio per GPT token (code stride at the model's input rate)


@pytest.fixture(scope="module")
def engine(tiny_xtts_dir, reference_clip):
    return XttsEngine(tiny_xtts_settings(tiny_xtts_dir, reference_clip), num_threads=2)


def test_loads_from_a_model_directory(engine, tiny_xtts_dir):
    info = engine.info()
    assert (info.engine, info.model, info.sample_rate) == ("xtts", tiny_xtts_dir.name, 24000)
    assert info.languages == ("en", "es", "fr", "de")
    # The speakers file's voice, then the configured clip's.
    assert [v.id for v in info.voices] == ["Tiny Narrator", "narrator"]
    # Chunk limits are the tokenizer's own, per language: English 250.
    assert info.chunk_chars_for("en") == 250 and info.chunk_chars_for("fr") == 273
    assert engine.device == "cpu"


def test_conditioning_from_a_reference_clip(engine, reference_clip):
    from voicegraph.engines.xtts import read_reference

    conditioning = engine.condition([read_reference(reference_clip)])
    assert tuple(conditioning.gpt_cond_latent.shape) == (1, 32, 32)
    assert tuple(conditioning.speaker_embedding.shape) == (1, 512, 1)


def test_a_clone_is_the_conditioning_as_arrays_and_speaks(engine, reference_clip):
    from voicegraph.core.errors import IncompatibleVoiceError
    from voicegraph.engines.xtts import read_reference

    pcm, rate = read_reference(reference_clip)
    clone = engine.clone(pcm, rate)
    assert (clone.engine, clone.model, clone.method) == ("xtts", engine.model_label, "xtts-conditioning")
    assert clone.arrays["gpt_cond_latent"].shape == (1, 32, 32)
    assert clone.arrays["speaker_embedding"].shape == (1, 512, 1)
    # The same reference conditions the same way as the configured clip.
    configured = engine.condition([(pcm, rate)])
    np.testing.assert_allclose(clone.arrays["speaker_embedding"], configured.speaker_embedding.numpy(), atol=1e-5)
    # Read-only, as arrays arrive from Ray's object store.
    for array in clone.arrays.values():
        array.flags.writeable = False
    audio = engine.synthesize("Hello there.", clone, "en", 1.0)
    assert audio.dtype == np.float32 and len(audio) > 0
    other_model = dataclasses.replace(clone, model="xtts_v2")
    with pytest.raises(IncompatibleVoiceError, match="xtts_v2"):
        engine.synthesize("Hello there.", other_model, "en", 1.0)


def test_synthesis_is_bounded_by_the_chunk_length(engine):
    text = "Hello world."
    pcm = engine.synthesize(text, "narrator", "en-us", 1.0)
    assert pcm.dtype == np.float32 and pcm.ndim == 1 and np.max(np.abs(pcm)) <= 1.0
    budget = engine._generation_kwargs(text, Sampling())["max_new_tokens"]
    assert budget == int(len(text) * 0.5) + 8
    # Random weights never emit the stop token: the bound is what ends generation.
    assert 0 < len(pcm) / 24000 <= (budget + 1) * HOP_SECONDS + 0.1


def test_stream_yields_pieces(engine):
    pieces = list(engine.synthesize_stream("Hello there, world.", "narrator", "en", 1.0))
    assert len(pieces) >= 1
    assert all(piece.dtype == np.float32 and piece.ndim == 1 for piece in pieces)
    total = sum(len(piece) for piece in pieces) / 24000
    budget = engine._generation_kwargs("Hello there, world.", Sampling())["max_new_tokens"]
    assert 0 < total <= (budget + 1) * HOP_SECONDS + 0.1


def test_sampling_defaults_come_from_the_model_config_and_can_be_overridden(engine):
    config = engine.model.config
    defaults = engine._generation_kwargs("abc", Sampling())
    assert (defaults["temperature"], defaults["top_p"], defaults["top_k"]) == (config.temperature, config.top_p, config.top_k)
    custom = engine._generation_kwargs("abc", Sampling(temperature=0.3, top_k=5, repetition_penalty=3.0))
    assert (custom["temperature"], custom["top_k"], custom["repetition_penalty"]) == (0.3, 5, 3.0)
    assert custom["top_p"] == config.top_p
    long_text = engine._generation_kwargs("x" * 10_000, Sampling())
    assert long_text["max_new_tokens"] == engine.model.gpt.max_gen_mel_tokens  # never past the model's own cap


def test_bad_voice_or_language_is_an_input_error(engine):
    with pytest.raises(UnknownVoiceError):
        engine.synthesize("hi", "nobody", "en", 1.0)
    with pytest.raises(UnsupportedLanguageError):
        engine.synthesize("hi", "narrator", "ja", 1.0)


def test_voices_from_the_speakers_file_alone(tiny_xtts_dir, reference_clip):
    settings = tiny_xtts_settings(tiny_xtts_dir, reference_clip)
    settings.xtts.voice_clips = {}
    settings.xtts.warmup = False
    engine = XttsEngine(settings, num_threads=2)
    assert [v.id for v in engine.info().voices] == ["Tiny Narrator"]
    assert len(engine.synthesize("Hi.", "Tiny Narrator", "en", 1.0)) > 0


def test_a_model_without_voices_is_refused_at_load(tiny_xtts_dir, reference_clip, tmp_path):
    for name in ("config.json", "model.pth", "vocab.json"):  # no speakers_xtts.pth
        (tmp_path / name).symlink_to(tiny_xtts_dir / name)
    settings = tiny_xtts_settings(tmp_path, reference_clip)
    settings.xtts.voice_clips = {}
    with pytest.raises(ValueError, match="voice_clips"):
        XttsEngine(settings, num_threads=2)


class Faults:
    """Make the engine's decoding raise given errors first: CUDA faults cannot be caused on a CPU."""

    def __init__(self, engine, monkeypatch, errors):
        self.errors = list(errors)
        self.calls = 0
        real = engine._decode_together

        def decode(items):
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            return real(items)

        monkeypatch.setattr(engine, "_decode_together", decode)


def test_cuda_oom_frees_the_cache_and_retries_once(engine, monkeypatch):
    faults = Faults(engine, monkeypatch, [torch.OutOfMemoryError("CUDA out of memory")])
    assert len(engine.synthesize("Hi.", "narrator", "en", 1.0)) > 0
    assert faults.calls == 2


def test_repeated_oom_is_left_to_the_chunk_retries(engine, monkeypatch):
    faults = Faults(engine, monkeypatch, [torch.OutOfMemoryError("CUDA out of memory")] * 2)
    with pytest.raises(torch.OutOfMemoryError):
        engine.synthesize("Hi.", "narrator", "en", 1.0)
    # The Synthesizer's own retry then gets through.
    faults.errors = [torch.OutOfMemoryError("CUDA out of memory")] * 2
    assert len(Synthesizer(engine, retries=2, backoff_s=0).synthesize("Hi.", "narrator", "en", 1.0)) > 0


@pytest.mark.parametrize(
    "message",
    [
        "CUDA error: device-side assert triggered",
        "CUDA error: an illegal memory access was encountered",
    ],
)
def test_unrecoverable_cuda_error_marks_the_replica_unhealthy(tiny_xtts_dir, reference_clip, monkeypatch, message):
    settings = tiny_xtts_settings(tiny_xtts_dir, reference_clip)
    settings.xtts.warmup = False
    engine = XttsEngine(settings, num_threads=2)
    engine.check_health()
    faults = Faults(engine, monkeypatch, [RuntimeError(message)])
    with pytest.raises(ReplicaFaultError, match="unrecoverable CUDA error"):
        Synthesizer(engine, retries=2, backoff_s=0).synthesize("Hi.", "narrator", "en", 1.0)
    assert faults.calls == 1  # not retried on this replica
    with pytest.raises(ReplicaFaultError):
        engine.check_health()  # Serve's health check now fails: the replica is replaced
    with pytest.raises(ReplicaFaultError):
        engine.synthesize("Hi.", "narrator", "en", 1.0)
    assert faults.calls == 1  # a broken replica no longer touches the model


def test_fatal_error_patterns():
    assert is_fatal_cuda_error(RuntimeError("CUDA error: misaligned address"))
    assert not is_fatal_cuda_error(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not is_fatal_cuda_error(ValueError("bad shape"))


# Batches: top_k=1 samples the most likely token, so a chunk's audio is
# reproducible and can be compared alone and in a batch.
GREEDY = Sampling(top_k=1)


@pytest.fixture(scope="module")
def batching_engine(tiny_xtts_dir, reference_clip):
    return make_prompts_matter(XttsEngine(tiny_xtts_settings(tiny_xtts_dir, reference_clip), num_threads=2))


def batch_of_different_chunks(engine, reference_clip):
    from voicegraph.engines.xtts import read_reference

    clone = engine.clone(*read_reference(reference_clip))
    return [
        ChunkRequest("Hello there.", "Tiny Narrator", "en", 1.0, GREEDY),
        ChunkRequest("A much longer sentence, with a clause or two, for the model to speak.", "narrator", "en", 1.3, GREEDY),
        ChunkRequest("Bonjour tout le monde.", clone, "fr", 0.8, GREEDY),
        ChunkRequest("Hola.", "Tiny Narrator", "es", 1.0, GREEDY),
    ]


def alone(engine, chunk):
    return engine.synthesize(chunk.text, chunk.voice, chunk.language, chunk.speed, chunk.sampling)


def assert_same_audio(together, separately):
    assert [len(a) for a in together] == [len(a) for a in separately]
    for a, b in zip(together, separately):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_batch_speaks_each_chunk_as_it_would_alone(batching_engine, reference_clip):
    chunks = batch_of_different_chunks(batching_engine, reference_clip)
    together = batching_engine.synthesize_batch(chunks)
    assert_same_audio(together, [alone(batching_engine, chunk) for chunk in chunks])
    # Different texts, voices and speeds: different audio, nothing shared between rows.
    assert len({len(audio) for audio in together}) == len(chunks)
    # The same text and speed in another voice is other audio: the rows' prompts mattered.
    other_voice = dataclasses.replace(chunks[0], voice="narrator")
    first, second = batching_engine.synthesize_batch([chunks[0], other_voice])
    assert len(first) == len(second) and not np.allclose(first, second, atol=1e-3)


def test_a_chunk_sounds_the_same_whatever_its_neighbours(batching_engine, reference_clip):
    chunks = batch_of_different_chunks(batching_engine, reference_clip)
    first = batching_engine.synthesize_batch(chunks)[1]
    assert_same_audio([batching_engine.synthesize_batch([chunks[1], chunks[0]])[0]], [first])
    assert_same_audio([batching_engine.synthesize_batch([chunks[3], chunks[2], chunks[1]])[2]], [first])


def test_chunks_that_sample_differently_are_decoded_in_separate_groups(batching_engine, reference_clip, monkeypatch):
    chunks = batch_of_different_chunks(batching_engine, reference_clip)
    hotter = dataclasses.replace(chunks[0], sampling=Sampling(top_k=1, temperature=0.5))
    sizes = []
    decode = batching_engine._decode_together
    monkeypatch.setattr(batching_engine, "_decode_together", lambda items: sizes.append(len(items)) or decode(items))
    audio = batching_engine.synthesize_batch([*chunks, hotter])
    assert sorted(sizes) == [1, 4]
    assert_same_audio(audio, [alone(batching_engine, chunk) for chunk in [*chunks, hotter]])


def test_out_of_memory_splits_the_batch_and_every_chunk_arrives_once(batching_engine, reference_clip, monkeypatch):
    # CUDA memory cannot be exhausted on a CPU: the batching_engine sees the error torch raises.
    chunks = batch_of_different_chunks(batching_engine, reference_clip)
    sizes = []
    decode = batching_engine._decode_together

    def fails_above_one(items):
        sizes.append(len(items))
        if len(items) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return decode(items)

    monkeypatch.setattr(batching_engine, "_decode_together", fails_above_one)
    audio = batching_engine.synthesize_batch(chunks)
    assert sizes == [4, 2, 1, 1, 2, 1, 1]
    assert_same_audio(audio, [alone(batching_engine, chunk) for chunk in chunks])


def test_engines_without_batching_take_a_batch_in_turn():
    from voicegraph.engines.espeak import EspeakEngine

    calls = []

    class RecordingEspeak(EspeakEngine):
        def synthesize(self, *args):
            calls.append(args)
            return super().synthesize(*args)

    chunks = [ChunkRequest("One.", "default", "en"), ChunkRequest("Two, three.", "deep", "en", 1.5)]
    together = RecordingEspeak().synthesize_batch(chunks)
    assert calls == [(c.text, c.voice, c.language, c.speed, c.sampling) for c in chunks]
    assert len(together) == 2 and len(together[1]) > len(together[0]) > 0


def test_one_chunk_sounds_as_coquis_own_inference(batching_engine, reference_clip):
    """The engine's one decoding path, for one chunk, is `Xtts.inference`."""
    for chunk in batch_of_different_chunks(batching_engine, reference_clip):
        if isinstance(chunk.voice, str):
            conditioning = batching_engine._voices[chunk.voice]
        else:
            conditioning = batching_engine._voice(chunk.voice, chunk.language)[0]
        kwargs = batching_engine._generation_kwargs(chunk.text, chunk.sampling)
        with torch.inference_mode():
            coqui = batching_engine.model.inference(
                chunk.text, chunk.language, conditioning.gpt_cond_latent, conditioning.speaker_embedding,
                speed=chunk.speed, enable_text_splitting=False, **kwargs,
            )["wav"]
        assert_same_audio([alone(batching_engine, chunk)], [np.asarray(coqui, np.float32).clip(-1.0, 1.0)])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_casts_the_gpt_weights_and_keeps_the_rest_in_float32(
    tiny_xtts_dir, reference_clip, dtype
):
    from voicegraph.engines.xtts import read_reference

    settings = tiny_xtts_settings(tiny_xtts_dir, reference_clip)
    settings.xtts.dtype = dtype
    settings.xtts.stream_chunk_tokens = 4
    engine = XttsEngine(settings, num_threads=2)  # the warm-up speaks once
    gpt = engine.model.gpt
    half = getattr(torch, dtype)
    assert {p.dtype for p in gpt.gpt.parameters()} == {half}
    assert gpt.text_embedding.weight.dtype == half and gpt.gpt_inference.lm_head[1].weight.dtype == half
    for kept in (gpt.conditioning_encoder, gpt.conditioning_perceiver, engine.model.hifigan_decoder):
        assert {p.dtype for p in kept.parameters()} == {torch.float32}
    reference = XttsEngine(tiny_xtts_settings(tiny_xtts_dir, reference_clip), num_threads=2)
    clone = engine.clone(*read_reference(reference_clip))
    chunks = [
        ChunkRequest("Hello there, in half precision.", "narrator", "en", 1.0, GREEDY),
        ChunkRequest("Bonjour.", clone, "fr", 1.3, GREEDY),
    ]
    for chunk, audio in zip(chunks, engine.synthesize_batch(chunks)):
        # Random weights never stop: each chunk speaks its whole budget, as in float32.
        assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() > 0
        assert len(audio) == len(alone(reference, chunk)) == len(alone(engine, chunk))
    streamed = np.concatenate(list(engine.synthesize_stream("Hello there.", clone, "en", 1.0, GREEDY)))
    assert np.isfinite(streamed).all() and len(streamed) > 0


def test_the_static_cache_gives_the_same_audio(batching_engine, reference_clip, monkeypatch):
    chunks = batch_of_different_chunks(batching_engine, reference_clip)
    dynamic = batching_engine.synthesize_batch(chunks)
    caches = []
    generate = batching_engine.model.gpt.gpt_inference.generate
    monkeypatch.setattr(
        batching_engine.model.gpt.gpt_inference,
        "generate",
        lambda *args, **kwargs: caches.append(kwargs["cache_implementation"]) or generate(*args, **kwargs),
    )
    monkeypatch.setattr(batching_engine._options, "static_cache", True)
    assert_same_audio(batching_engine.synthesize_batch(chunks), dynamic)
    assert caches == ["static"]
