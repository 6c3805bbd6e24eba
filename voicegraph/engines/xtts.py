"""Coqui XTTS v2 through coqui-tts (imported as `TTS`), the production engine.

Loaded once per Synthesizer replica: on the GPU Ray assigned the replica when
it has one, else on the CPU. Every generation is bounded by the chunk's length,
so a model that never emits its stop token cannot run away.
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicegraph.core.errors import ReplicaFaultError
from voicegraph.core.settings import Settings
from voicegraph.engines.base import (
    ChunkRequest,
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
from voicegraph.engines.windowed_vocoder import WindowedVocoder

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


@dataclass(frozen=True)
class _Prepared:
    """A chunk ready for the GPT: its voice, language and generation settings resolved."""

    text: str
    language: str
    speed: float
    conditioning: Conditioning
    generation: dict  # `_generation_kwargs`, the token budget included


def read_reference(path: Path) -> tuple[np.ndarray, int]:
    """A reference clip as mono float32. soundfile, not torchaudio.load: on
    torch >= 2.9 that goes through torchcodec, which a CPU-only torch cannot load."""
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), rate


class XttsEngine(Engine):
    # One GPT decode step costs about as much for 8 sequences as for one (it is
    # bound by kernel launches on a GPU): batches fill the GPU.
    default_batch_size = 8

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
        if self._options.dtype != "float32":
            # The GPT's weights, not autocast around float32 ones (measured 3x
            # slower). What hears reference audio (conditioning encoder,
            # perceiver, speaker encoder) and HiFi-GAN stay float32: their
            # cost is small and their outputs are reused by every chunk.
            dtype = getattr(self._torch, self._options.dtype)
            model.gpt.to(dtype)
            # coqui swaps GPT-2's position embeddings for float32 zeros, which
            # would turn every hidden state back into float32.
            model.gpt.gpt.wpe = lambda positions: self._torch.zeros((), dtype=dtype, device=positions.device)
            model.gpt.conditioning_encoder.float()
            if getattr(model.gpt, "conditioning_perceiver", None) is not None:
                model.gpt.conditioning_perceiver.float()
        return model, label

    def _load_voices(self) -> dict[str, Conditioning]:
        voices: dict[str, Conditioning] = {}
        manager = getattr(self.model, "speaker_manager", None)
        for name, latents in manager.speakers.items() if manager else ():
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
            "length_penalty": sampling.length_penalty if sampling.length_penalty is not None else config.length_penalty,
            "max_new_tokens": min(budget, self.model.gpt.max_gen_mel_tokens),
        }

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
                with self._torch.inference_mode():
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
            with torch.inference_mode():
                return work()
        except torch.OutOfMemoryError:
            logger.warning("CUDA out of memory; freeing the cache and retrying the chunk once")
            self._free_cuda_cache()
            with torch.inference_mode():
                return work()

    def _free_cuda_cache(self) -> None:
        gc.collect()
        if self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()

    def synthesize(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> np.ndarray:
        item = self._prepare(ChunkRequest(text, voice, language, speed, sampling))
        return self._guarded(lambda: self._decode_together([item])[0]).clip(-1.0, 1.0)

    def _prepare(self, chunk: ChunkRequest) -> _Prepared:
        conditioning, language = self._voice(chunk.voice, chunk.language)
        generation = self._generation_kwargs(chunk.text, chunk.sampling)
        return _Prepared(chunk.text, language, chunk.speed, conditioning, generation)

    def synthesize_batch(self, chunks: Sequence[ChunkRequest]) -> list[np.ndarray]:
        """Chunks decoded together: one GPT generation for every chunk that
        samples alike (prompts left-padded under an attention mask, each chunk
        cut at its own stop token or its own token budget), then each chunk's
        latents and HiFi-GAN on its own. One chunk of the batch sounds as it
        would alone; an out-of-memory error splits the batch and tries the halves."""
        prepared = [self._prepare(chunk) for chunk in chunks]
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(prepared):
            alike = tuple(sorted((k, v) for k, v in item.generation.items() if k != "max_new_tokens"))
            groups.setdefault(alike, []).append(index)
        audio: list[np.ndarray] = [np.empty(0, np.float32)] * len(prepared)
        for indices in groups.values():
            group = [prepared[index] for index in indices]
            decoded = self._guarded(lambda group=group: self._split_on_oom(group), retry_oom=False)
            for index, pcm in zip(indices, decoded):
                audio[index] = pcm.clip(-1.0, 1.0)
        return audio

    def _split_on_oom(self, items: list[_Prepared]) -> list[np.ndarray]:
        torch = self._torch
        try:
            with torch.inference_mode():
                return self._decode_together(items)
        except torch.OutOfMemoryError:
            self._free_cuda_cache()
            if len(items) == 1:
                logger.warning("CUDA out of memory on one chunk; retrying it once")
                with torch.inference_mode():
                    return self._decode_together(items)
            half = len(items) // 2
            logger.warning("CUDA out of memory on a batch of %d chunks; trying its halves", len(items))
            return self._split_on_oom(items[:half]) + self._split_on_oom(items[half:])

    def _gpt_input(self, tensor):
        """A voice's latents as the GPT takes them: on its device, in its precision."""
        return tensor.to(self.device, self.model.gpt.text_embedding.weight.dtype)

    def _text_tokens(self, text: str, language: str):
        encoded = self.model.tokenizer.encode(text.strip().lower(), lang=language.split("-")[0])
        return self._torch.IntTensor(encoded).unsqueeze(0).to(self.device)

    def _decode_together(self, items: list[_Prepared]) -> list[np.ndarray]:
        torch, model = self._torch, self.model
        gpt = model.gpt
        tokens = [self._text_tokens(item.text, item.language) for item in items]
        prompts = []
        for item, text in zip(items, tokens):
            # What gpt.compute_embeddings makes of one chunk: its voice's latents, then its text.
            text = torch.nn.functional.pad(text, (0, 1), value=gpt.stop_text_token)
            text = torch.nn.functional.pad(text, (1, 0), value=gpt.start_text_token)
            embedded = gpt.text_embedding(text) + gpt.text_pos_embedding(text)
            latents = self._gpt_input(item.conditioning.gpt_cond_latent)
            prompts.append(torch.cat([latents, embedded], dim=1)[0])
        width = max(len(prompt) for prompt in prompts)
        prefix = prompts[0].new_zeros((len(items), width, prompts[0].shape[-1]))
        mask = torch.zeros((len(items), width + 1), dtype=torch.long, device=self.device)
        for row, prompt in enumerate(prompts):
            # Left padding: every chunk's first audio token comes at the same step, so
            # the mel position embeddings (counted from the prefix's end) stay right.
            prefix[row, width - len(prompt) :] = prompt
            mask[row, width - len(prompt) :] = 1
        gpt.gpt_inference.store_prefix_emb(prefix)
        inputs = torch.ones((len(items), width + 1), dtype=torch.long, device=self.device)
        inputs[:, -1] = gpt.start_audio_token
        budgets = [item.generation["max_new_tokens"] for item in items]
        sampling = {k: v for k, v in items[0].generation.items() if k != "max_new_tokens"}
        codes = gpt.gpt_inference.generate(
            inputs,
            attention_mask=mask,
            bos_token_id=gpt.start_audio_token,
            pad_token_id=gpt.stop_audio_token,
            eos_token_id=gpt.stop_audio_token,
            max_new_tokens=max(budgets),
            do_sample=True,
            num_beams=1,
            output_attentions=False,
            cache_implementation="static" if self._options.static_cache else None,
            **sampling,
        )[:, width + 1 :]
        audio = []
        for item, text, row, budget in zip(items, tokens, codes, budgets):
            row = row[:budget]
            stops = (row == gpt.stop_audio_token).nonzero()
            if len(stops):
                row = row[: int(stops[0]) + 1]  # its stop token, as generation alone ends
            audio.append(self._vocode(item, text, row.unsqueeze(0)))
        return audio

    def _vocode(self, item: _Prepared, text, codes) -> np.ndarray:
        """GPT codes → audio, as `Xtts.inference` does for one chunk."""
        torch, gpt = self._torch, self.model.gpt
        latents = gpt(
            text,
            torch.tensor([text.shape[-1]], device=self.device),
            codes,
            torch.tensor([codes.shape[-1] * gpt.code_stride_len], device=self.device),
            cond_latents=self._gpt_input(item.conditioning.gpt_cond_latent),
            return_attentions=False,
            return_latent=True,
        ).float()  # HiFi-GAN runs in float32 whatever the GPT's precision
        if item.speed != 1.0:
            latents = torch.nn.functional.interpolate(
                latents.transpose(1, 2), scale_factor=1.0 / max(item.speed, 0.05), mode="linear"
            ).transpose(1, 2)
        wav = self.model.hifigan_decoder(latents, g=item.conditioning.speaker_embedding.to(self.device))
        return wav.detach().float().cpu().squeeze().numpy()

    def synthesize_stream(
        self, text: str, voice: Voice, language: str, speed: float, sampling: Sampling = Sampling()
    ) -> Iterator[np.ndarray]:
        """Pieces of `stream_chunk_tokens` GPT tokens each, the first as soon as
        they are generated; each piece's HiFi-GAN runs on a window of latents
        (WindowedVocoder), so the stream costs about what the plain call costs."""
        conditioning, language = self._voice(voice, language)
        kwargs = self._generation_kwargs(text, sampling)
        gpt = self.model.gpt

        def start():
            latents = self._gpt_input(conditioning.gpt_cond_latent)
            prompt = gpt.compute_embeddings(latents, self._text_tokens(text, language))
            return gpt.get_generator(
                fake_inputs=prompt,
                do_sample=True,
                num_beams=1,
                num_return_sequences=1,
                output_attentions=False,
                output_hidden_states=True,
                return_dict_in_generate=True,
                **kwargs,
            )

        generated = self._guarded(start, retry_oom=False)
        vocoder = self._stream_vocoder(conditioning, speed)
        latents = []
        step = self._options.stream_chunk_tokens

        def next_piece():
            new = [latent for _, latent in itertools.islice(generated, step)]
            latents.extend(new)
            final = len(new) < step
            piece = vocoder.piece(self._torch.cat(latents)[None], final) if latents else None
            return piece, final

        while True:
            # A generator that raised is finished: an OOM mid-stream cannot be retried here.
            piece, final = self._guarded(next_piece, retry_oom=False)
            if piece is not None:
                yield piece.detach().float().cpu().numpy().clip(-1.0, 1.0)
            if final:
                return

    def _stream_vocoder(self, conditioning: Conditioning, speed: float) -> WindowedVocoder:
        """HiFi-GAN split where a window can start: the interpolations of
        `HifiDecoder.forward` (and the chunk's speed) on all latents, then its
        waveform decoder on a window of the frames they give."""
        decoder, interpolate = self.model.hifigan_decoder, self._torch.nn.functional.interpolate
        frames_per_latent = decoder.ar_mel_length_compression / decoder.output_hop_length
        rate = decoder.output_sample_rate / decoder.input_sample_rate
        stretch = 1.0 / max(speed, 0.05)

        def upsample(latents):
            frames = latents.float().transpose(1, 2)
            if speed != 1.0:
                frames = interpolate(frames, scale_factor=stretch, mode="linear")
            frames = interpolate(frames, scale_factor=[frames_per_latent], mode="linear")
            if rate != 1.0:
                frames = interpolate(frames, scale_factor=[rate], mode="linear")
            return frames

        speaker = conditioning.speaker_embedding.to(self.device)
        return WindowedVocoder(
            upsample,
            lambda frames: decoder.waveform_decoder(frames, g=speaker),
            hop=decoder.output_hop_length,
            frames_per_latent=frames_per_latent * rate * stretch,
        )

    def check_health(self) -> None:
        if self._fatal:
            raise ReplicaFaultError(f"unrecoverable CUDA error: {self._fatal}")


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    import torch
    import torchaudio.functional

    return torchaudio.functional.resample(torch.from_numpy(audio), rate, target).numpy()
