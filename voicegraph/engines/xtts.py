"""Coqui XTTS v2 through coqui-tts (imported as `TTS`), the production engine.

Loaded once per Synthesizer replica: on the GPU Ray assigned the replica when
it has one, else on the CPU. Every generation is bounded by the chunk's length,
so a model that never emits its stop token cannot run away.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
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
    text_tokens: object  # torch.IntTensor (1, n): the text as the tokenizer encodes it


def _sampling_groups(items: list[_Prepared]) -> list[list[int]]:
    """Indices of the chunks one generation can take together: transformers'
    generate has one set of sampling settings per call."""
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(items):
        alike = tuple(sorted((k, v) for k, v in item.generation.items() if k != "max_new_tokens"))
        groups.setdefault(alike, []).append(index)
    return list(groups.values())


def _cut(item: _Prepared, codes, stop_token: int):
    """A chunk's row of a batch's codes: up to its own budget, or its first
    stop token (kept, as generation alone ends)."""
    codes = codes[: item.generation["max_new_tokens"]]
    stops = (codes == stop_token).nonzero()
    return codes[: int(stops[0]) + 1] if len(stops) else codes


def _has_ended(item: _Prepared, codes, stop_token: int) -> bool:
    return len(codes) >= item.generation["max_new_tokens"] or bool((codes == stop_token).any())


class _StreamClosed(Exception):
    """Raised inside generate, from the streamer, when the stream's consumer left."""


_ENDED = object()


class _PieceStreamer:
    """transformers' streamer protocol (`put` each step's tokens, `end`):
    every `every` tokens, each chunk's new audio, handed to the consumer."""

    def __init__(self, engine: XttsEngine, items: list[_Prepared], every: int, stop: threading.Event):
        self._engine, self._items, self._every, self._stop = engine, items, every, stop
        self._vocoders = [engine._stream_vocoder(item.conditioning, item.speed) for item in items]
        self._steps: list = []
        self._prompt_seen = False
        self._ended = [False] * len(items)
        self.pieces: queue.Queue = queue.Queue(maxsize=2)

    def put(self, tokens) -> None:
        if not self._prompt_seen:  # generate hands over the prompt first
            self._prompt_seen = True
            return
        if self._stop.is_set():
            raise _StreamClosed
        self._steps.append(tokens.reshape(-1))
        if len(self._steps) % self._every == 0:
            self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if not self._steps:
            return
        engine, torch = self._engine, self._engine._torch
        stop_token = engine.model.gpt.stop_audio_token
        codes = torch.stack(self._steps, dim=1)
        step: list[np.ndarray | None] = []
        for row, item in enumerate(self._items):
            if self._ended[row]:
                step.append(None)
                continue
            ended = final or _has_ended(item, codes[row], stop_token)
            own = _cut(item, codes[row], stop_token).to(engine.device)
            piece = self._vocoders[row].piece(engine._latents(item, own), final=ended)
            step.append(np.empty(0, np.float32) if piece is None else piece.float().cpu().numpy().clip(-1.0, 1.0))
            self._ended[row] = ended
        self.hand_over(step)

    def hand_over(self, step) -> None:
        """Into the queue, waiting while the consumer is behind, unless it left."""
        while not self._stop.is_set():
            try:
                self.pieces.put(step, timeout=0.05)
                return
            except queue.Full:
                continue


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
            streams_within_chunks=True,
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
        return self.synthesize_batch([ChunkRequest(text, voice, language, speed, sampling)])[0]

    def _prepare(self, chunk: ChunkRequest) -> _Prepared:
        conditioning, language = self._voice(chunk.voice, chunk.language)
        generation = self._generation_kwargs(chunk.text, chunk.sampling)
        tokens = self._text_tokens(chunk.text, language)
        return _Prepared(chunk.text, language, chunk.speed, conditioning, generation, tokens)

    def synthesize_batch(self, chunks: Sequence[ChunkRequest]) -> list[np.ndarray]:
        """Chunks decoded together: one GPT generation for every chunk that
        samples alike (prompts left-padded under an attention mask, each chunk
        cut at its own stop token or its own token budget), then each chunk's
        latents and HiFi-GAN on its own. One chunk of the batch sounds as it
        would alone; an out-of-memory error splits the batch and tries the halves."""
        prepared = [self._prepare(chunk) for chunk in chunks]
        audio: list[np.ndarray] = [np.empty(0, np.float32)] * len(prepared)
        for indices in _sampling_groups(prepared):
            group = [prepared[index] for index in indices]
            decoded = self._guarded(lambda group=group: self._split_on_oom(group), retry_oom=False)
            for index, pcm in zip(indices, decoded):
                audio[index] = pcm.clip(-1.0, 1.0)
        return audio

    def stream_batch(self, chunks: Sequence[ChunkRequest]) -> Iterator[list[np.ndarray | None]]:
        """Chunks decoded together, as streams: every `stream_chunk_tokens`
        generated tokens, a list with each chunk's new audio (empty when none
        is settled yet), and None for a chunk once it has ended. A chunk's
        pieces joined are the audio `synthesize_batch` gives it (the same
        generation, latents and HiFi-GAN, decoded piece by piece through a
        WindowedVocoder). Chunks that sample differently stream one group
        after another. Closing the iterator stops the generation."""
        prepared = [self._prepare(chunk) for chunk in chunks]
        ended = [False] * len(prepared)
        for indices in _sampling_groups(prepared):
            for step in self._stream_group([prepared[index] for index in indices]):
                out: list[np.ndarray | None] = [None if done else np.empty(0, np.float32) for done in ended]
                for index, piece in zip(indices, step):
                    out[index] = piece
                yield out
            for index in indices:
                ended[index] = True

    def _stream_group(self, items: list[_Prepared]) -> Iterator[list[np.ndarray | None]]:
        if self._fatal:
            raise ReplicaFaultError(f"replica is unhealthy after a CUDA error: {self._fatal}")
        # transformers' generate is no generator: it runs in its own thread,
        # and the streamer it calls at each token hands the pieces over.
        stop = threading.Event()
        streamer = _PieceStreamer(self, items, self._options.stream_chunk_tokens, stop)
        pieces = streamer.pieces

        def generate():
            try:
                self._guarded(lambda: self._generate(items, streamer), retry_oom=False)
            except _StreamClosed:
                pass
            except BaseException as exc:  # handed to the consumer, raised there
                streamer.hand_over(exc)
            finally:
                streamer.hand_over(_ENDED)

        worker = threading.Thread(target=generate, name="xtts-stream", daemon=True)
        worker.start()
        try:
            while (step := pieces.get()) is not _ENDED:
                if isinstance(step, BaseException):
                    raise step
                yield step
        finally:
            stop.set()
            while worker.is_alive():  # unblock a streamer waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    pieces.get(timeout=0.05)

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
        codes = self._generate(items)
        return [self._vocode(item, _cut(item, row, self.model.gpt.stop_audio_token)) for item, row in zip(items, codes)]

    def _generate(self, items: list[_Prepared], streamer=None):
        """One GPT generation for chunks that sample alike: their audio codes, one row each."""
        torch, gpt = self._torch, self.model.gpt
        prompts = []
        for item in items:
            # What gpt.compute_embeddings makes of one chunk: its voice's latents, then its text.
            text = torch.nn.functional.pad(item.text_tokens, (0, 1), value=gpt.stop_text_token)
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
        sampling = {k: v for k, v in items[0].generation.items() if k != "max_new_tokens"}
        return gpt.gpt_inference.generate(
            inputs,
            attention_mask=mask,
            bos_token_id=gpt.start_audio_token,
            pad_token_id=gpt.stop_audio_token,
            eos_token_id=gpt.stop_audio_token,
            max_new_tokens=max(item.generation["max_new_tokens"] for item in items),
            do_sample=True,
            num_beams=1,
            output_attentions=False,
            cache_implementation="static" if self._options.static_cache else None,
            streamer=streamer,
            **sampling,
        )[:, width + 1 :]

    def _latents(self, item: _Prepared, codes):
        """A chunk's GPT latents for its codes, as `Xtts.inference` computes
        them: the GPT run over the whole sequence, so the latents of a prefix
        of the codes are the first latents of the whole."""
        torch, gpt = self._torch, self.model.gpt
        codes = codes.unsqueeze(0)
        return gpt(
            item.text_tokens,
            torch.tensor([item.text_tokens.shape[-1]], device=self.device),
            codes,
            torch.tensor([codes.shape[-1] * gpt.code_stride_len], device=self.device),
            cond_latents=self._gpt_input(item.conditioning.gpt_cond_latent),
            return_attentions=False,
            return_latent=True,
        ).float()  # HiFi-GAN runs in float32 whatever the GPT's precision

    def _vocode(self, item: _Prepared, codes) -> np.ndarray:
        """GPT codes → audio, as `Xtts.inference` does for one chunk."""
        torch = self._torch
        latents = self._latents(item, codes)
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
        they are generated: a batch of one of `stream_batch`."""
        for (piece,) in self.stream_batch([ChunkRequest(text, voice, language, speed, sampling)]):
            if piece is not None and len(piece):
                yield piece

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
            if int(frames.shape[-1] * stretch) == 0:
                return frames[..., :0]  # too few latents yet for one frame at this speed
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
