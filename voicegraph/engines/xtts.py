"""Coqui XTTS v2 through coqui-tts (imported as `TTS`), the production engine.

Loaded once per Synthesizer replica: on the GPU Ray assigned the replica when
it has one, else on the CPU. Every generation is bounded by the chunk's length,
so a model that never emits its stop token cannot run away.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegraph.core.errors import ReplicaFaultError
from voicegraph.core.settings import Settings
from voicegraph.engines.base import (
    ClonedVoice,
    Engine,
    EngineInfo,
    Sampling,
    Voice,
    VoiceInfo,
    check_compatible,
    check_voice,
    resolve_language,
)

logger = logging.getLogger("ray.serve")

# Messages of CUDA errors after which the CUDA context is unusable: the
# replica must be replaced, retrying on it would fail again.
_FATAL_CUDA_ERRORS = (
    "device-side assert",
    "illegal memory access",
    "unspecified launch failure",
    "misaligned address",
    "illegal instruction",
    "cuda error: an illegal",
    "cublas_status_execution_failed",
)


def is_fatal_cuda_error(error: BaseException) -> bool:
    message = str(error).lower()
    return any(pattern in message for pattern in _FATAL_CUDA_ERRORS)


@dataclass(frozen=True)
class Conditioning:
    """What XTTS needs of a voice: the GPT prompt latents and the speaker embedding."""

    gpt_cond_latent: object  # torch.Tensor (1, 32, channels)
    speaker_embedding: object  # torch.Tensor (1, 512, 1)


def read_reference(path: Path) -> tuple[np.ndarray, int]:
    """A reference clip as mono float32. soundfile, not torchaudio.load: on
    torch >= 2.9 that goes through torchcodec, which a CPU-only torch cannot load."""
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


class XttsEngine(Engine):
    def __init__(self, settings: Settings, num_threads: int = 1):
        import torch

        self._torch = torch
        self._options = settings.xtts
        torch.set_num_threads(max(1, num_threads))
        self.device = self._pick_device()
        self.model, self.model_label = self._load(settings)
        self.languages = tuple(self.model.config.languages)
        self._voices = self._load_voices()
        if not self._voices:
            raise ValueError(
                "the XTTS model has no speakers file and no voice clips are configured: "
                "set xtts.voice_clips to reference recordings"
            )
        # One model, one CUDA stream: calls from the replica's threads take turns.
        self._lock = threading.Lock()
        self._fatal: str | None = None
        if self._options.warmup:
            self.synthesize("Warm up.", next(iter(self._voices)), self.languages[0], 1.0)

    def _pick_device(self) -> str:
        wanted = self._options.device
        if wanted == "cuda" or (wanted == "auto" and self._torch.cuda.is_available()):
            return "cuda"
        return "cpu"

    def _load(self, settings: Settings):
        from TTS.tts.configs.xtts_config import XttsConfig
        from TTS.tts.models.xtts import Xtts

        if settings.model_dir is not None:
            model_dir, label = Path(settings.model_dir), Path(settings.model_dir).name
        elif settings.model_name is not None:
            from TTS.utils.manage import ModelManager

            # Coqui's own download and cache; needs internet and the model's licence terms.
            model_dir, _, _ = ModelManager().download_model(settings.model_name)
            label = settings.model_name
        else:
            raise ValueError("engine xtts needs model_dir (VG_MODEL_DIR) or model_name (VG_MODEL_NAME)")
        config = XttsConfig()
        config.load_json(str(Path(model_dir) / "config.json"))
        model = Xtts(config)
        model.load_checkpoint(config, checkpoint_dir=str(model_dir), eval=True, use_deepspeed=False)
        model.to(self.device)
        return model, label

    def _load_voices(self) -> dict[str, Conditioning]:
        voices: dict[str, Conditioning] = {}
        manager = getattr(self.model, "speaker_manager", None)
        for name, latents in (manager.speakers.items() if manager else ()):
            voices[name] = Conditioning(latents["gpt_cond_latent"], latents["speaker_embedding"])
        for name, paths in self._options.voice_clips.items():
            voices[name] = self.condition([read_reference(path) for path in paths])
        return voices

    def condition(self, clips: list[tuple[np.ndarray, int]]) -> Conditioning:
        """Reference audio → conditioning; several clips are joined as one reference."""
        torch = self._torch
        rate = clips[0][1]
        joined = np.concatenate([audio if r == rate else _resample(audio, r, rate) for audio, r in clips])
        audio = torch.from_numpy(joined).unsqueeze(0)
        with torch.inference_mode():
            return Conditioning(
                self.model.get_gpt_cond_latents(audio, rate).to(self.device),
                self.model.get_speaker_embedding(audio, rate).to(self.device),
            )

    def info(self) -> EngineInfo:
        limits = self.model.tokenizer.char_limits
        return EngineInfo(
            engine="xtts",
            model=self.model_label,
            sample_rate=self.model.config.model_args.output_sample_rate,
            languages=self.languages,
            voices=tuple(VoiceInfo(id=name, name=name, description="XTTS voice") for name in self._voices),
            default_language=self.languages[0],
            chunk_chars={"*": 250, **{lang: limits.get(lang.split("-")[0], 250) for lang in self.languages}},
        )

    def _generation_kwargs(self, text: str, sampling: Sampling) -> dict:
        config = self.model.config
        budget = int(len(text) * self._options.tokens_per_char) + self._options.min_new_tokens
        return {
            "temperature": sampling.temperature if sampling.temperature is not None else config.temperature,
            "top_p": sampling.top_p if sampling.top_p is not None else config.top_p,
            "top_k": sampling.top_k if sampling.top_k is not None else config.top_k,
            "repetition_penalty": sampling.repetition_penalty
            if sampling.repetition_penalty is not None
            else config.repetition_penalty,
            "length_penalty": sampling.length_penalty
            if sampling.length_penalty is not None
            else config.length_penalty,
            "max_new_tokens": min(budget, self.model.gpt.max_gen_mel_tokens),
        }

    def _precision(self):
        if self.device == "cuda" and self._options.dtype != "float32":
            dtype = getattr(self._torch, self._options.dtype)
            return self._torch.autocast(device_type="cuda", dtype=dtype)
        return contextlib.nullcontext()

    def _voice(self, voice: Voice, language: str) -> tuple[Conditioning, str]:
        language = resolve_language(language, self.languages, "xtts")
        if isinstance(voice, ClonedVoice):
            check_compatible(voice, "xtts", self.model_label)
            torch = self._torch
            conditioning = Conditioning(
                # A copy: arrays from the object store are read-only.
                torch.tensor(voice.arrays["gpt_cond_latent"], device=self.device),
                torch.tensor(voice.arrays["speaker_embedding"], device=self.device),
            )
            return conditioning, language
        return self._voices[check_voice(voice, self._voices)], language

    def clone(self, pcm: np.ndarray, rate: int) -> ClonedVoice:
        conditioning = self._guarded(lambda: self.condition([(pcm, rate)]))
        return ClonedVoice(
            engine="xtts",
            model=self.model_label,
            method="xtts-conditioning",
            arrays={
                "gpt_cond_latent": conditioning.gpt_cond_latent.float().cpu().numpy(),
                "speaker_embedding": conditioning.speaker_embedding.float().cpu().numpy(),
            },
        )

    def _guarded(self, work, retry_oom: bool = True):
        """Run model work; recover from CUDA OOM once, flag a broken CUDA context."""
        if self._fatal:
            raise ReplicaFaultError(f"replica is unhealthy after a CUDA error: {self._fatal}")
        with self._lock:
            try:
                if retry_oom:
                    return self._run_retrying_oom(work)
                with self._torch.inference_mode(), self._precision():
                    return work()
            except Exception as exc:
                if is_fatal_cuda_error(exc):
                    self._fatal = str(exc)
                    logger.error("unrecoverable CUDA error; replica will be replaced: %s", exc)
                    raise ReplicaFaultError(f"unrecoverable CUDA error: {exc}") from exc
                raise

    def _run_retrying_oom(self, work):
        torch = self._torch
        try:
            with torch.inference_mode(), self._precision():
                return work()
        except torch.OutOfMemoryError:
            logger.warning("CUDA out of memory; freeing the cache and retrying the chunk once")
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            with torch.inference_mode(), self._precision():
                return work()

    def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        conditioning, language = self._voice(voice, language)
        kwargs = self._generation_kwargs(text, sampling)

        def work():
            result = self.model.inference(
                text, language, conditioning.gpt_cond_latent, conditioning.speaker_embedding,
                speed=speed, enable_text_splitting=False, **kwargs,
            )
            return np.asarray(result["wav"], dtype=np.float32)

        return self._guarded(work).clip(-1.0, 1.0)

    def synthesize_stream(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> Iterator[np.ndarray]:
        conditioning, language = self._voice(voice, language)
        kwargs = self._generation_kwargs(text, sampling)
        pieces = self._guarded(
            lambda: iter(
                self.model.inference_stream(
                    text, language, conditioning.gpt_cond_latent, conditioning.speaker_embedding,
                    stream_chunk_size=self._options.stream_chunk_tokens, speed=speed,
                    enable_text_splitting=False, **kwargs,
                )
            ),
            retry_oom=False,
        )
        while True:
            # A generator that raised is finished: an OOM mid-stream cannot be retried here.
            piece = self._guarded(lambda: next(pieces, None), retry_oom=False)
            if piece is None:
                return
            yield piece.detach().float().cpu().numpy().clip(-1.0, 1.0)

    def check_health(self) -> None:
        if self._fatal:
            raise ReplicaFaultError(f"unrecoverable CUDA error: {self._fatal}")


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    import torch
    import torchaudio.functional

    return torchaudio.functional.resample(torch.from_numpy(audio), rate, target).numpy()
