"""The XTTS engine on a tiny random checkpoint: the real loading and inference code."""

import numpy as np
import pytest
import torch

from tests.helpers.xtts import tiny_xtts_settings
from voicegraph.core.errors import ReplicaFaultError, UnknownVoiceError, UnsupportedLanguageError
from voicegraph.engines.base import Sampling
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
    import dataclasses

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
    """Make the model's inference raise given errors first: CUDA faults cannot be caused on a CPU."""

    def __init__(self, engine, monkeypatch, errors):
        self.errors = list(errors)
        self.calls = 0
        real = engine.model.inference

        def inference(*args, **kwargs):
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            return real(*args, **kwargs)

        monkeypatch.setattr(engine.model, "inference", inference)


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
