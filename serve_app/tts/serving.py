"""The TTS request path: validate, chunk, fan out, stitch, optionally store.

Talks to the other deployments only through the handles it is given, so the
same object runs the graph on a laptop or across a cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

import numpy as np
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, RequestCancelledError

from serve_app.tts.protocol import SpeechParams
from voicegraph.access.backlog import Backlog, Work
from voicegraph.audio.dsp import ms_to_samples
from voicegraph.audio.formats import audio_format
from voicegraph.audio.stitching import StitchedAudio, Stitcher
from voicegraph.audio.streaming import ChunkInPieces, stream_piece
from voicegraph.core import metrics
from voicegraph.core.errors import (
    DeadlineTooShortError,
    IncompatibleVoiceError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    ReplicaFaultError,
    SpeedOutOfRangeError,
    UnknownVoiceError,
    UpstreamTimeoutError,
)
from voicegraph.core.retry import Retry, retry_async
from voicegraph.core.settings import Settings
from voicegraph.engines import EngineInfo, Sampling, Voice
from voicegraph.engines.base import TimedAudio, check_compatible, resolve_language
from voicegraph.engines.catalog import SEPARATOR, EngineCatalog, Preset, qualified
from voicegraph.storage.layout import StoredObject, response_cache_keys
from voicegraph.storage.response_cache import CachedSpeech, cache_key, from_sidecar, sidecar
from voicegraph.text.captions import Caption, CaptionFormat, caption_chunks, render, to_json
from voicegraph.text.chunking import Chunk, check_text, split_head, split_sentences
from voicegraph.text.words import captions_from_json, word_captions

logger = logging.getLogger("ray.serve")


# Called with (chunks done, chunks in all) as a request's chunks finish.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SpeechJob:
    """A request after validation: everything the graph needs, nothing optional."""

    text: str
    engine: str  # the engine that speaks it, its Synthesizer deployment
    voice: Voice  # a preset's id (the engine's own) or a cloned voice's conditioning
    voice_id: str  # names the voice in storage keys and responses
    language: str
    format: str
    speed: float
    sampling: Sampling = Sampling()
    voice_cache_hit: bool | None = None
    normalize: bool = True  # with voice_url: was the cached clone used
    timed: bool = False  # captions asked for: each word's time, on the words as written


@dataclass(frozen=True)
class Speech:
    job: SpeechJob
    audio: StitchedAudio
    chunks: tuple[str, ...]
    cache_hit: bool | None = None  # None: the response cache is off
    # Each chunk's sentences, for captions; None when read from the response
    # cache, which keeps the chunks' text only.
    sentences: tuple[tuple[str, ...], ...] | None = None
    # With `timed`: sentence captions with their words, on the text as written.
    word_captions: tuple[Caption, ...] | None = None
    words_estimated: bool | None = None  # True where an engine could not time its words


class TTSServing:
    def __init__(self, settings: Settings, chunker, synthesizers: dict, stitcher, storage, profiles):
        self.settings = settings
        self._chunker = chunker
        self._synthesizers = synthesizers  # handles by engine
        self._routed: dict[tuple[str, str | None], object] = {}  # (engine, voice model) → handle
        self._stitcher = stitcher
        self._storage = storage
        self._profiles = profiles
        self._audio = Stitcher(settings)  # plans and joins; the Stitcher encodes
        # Admission per engine: each has its own Synthesizers and its own
        # speed, so XTTS's backlog neither refuses eSpeak's requests nor
        # makes their wait look long.
        self.backlogs = {engine: Backlog(settings.admission.speed_half_life_s) for engine in synthesizers or ()}
        self._catalog: EngineCatalog | None = None
        self._catalog_at = 0.0
        self._catalog_refresh: asyncio.Task | None = None
        # What this replica has under way, for /health and load tests.
        self.chunks_in_flight = 0
        self.chunks_done = 0
        self.chunks_cancelled: Counter[str] = Counter()  # by why: client_left, deadline, failed
        self.open_streams = 0
        self.cache_hits = 0
        self.cache_misses = 0
        # Cache writes run after the response; held here so none is collected mid-write.
        self._cache_writes: set[asyncio.Task] = set()

    async def catalog(self) -> EngineCatalog:
        """The engines served and their voices. Every replica of an engine
        holds the same model; voices can be added (Piper's voices_dir), so
        the answer is asked again, in the background, once it is
        piper.rescan_interval_s old."""
        if self._catalog is None:
            await self._read_catalog()
        elif time.monotonic() - self._catalog_at >= self.settings.piper.rescan_interval_s and (
            self._catalog_refresh is None or self._catalog_refresh.done()
        ):
            self._catalog_refresh = asyncio.ensure_future(self._read_catalog())
        assert self._catalog is not None
        return self._catalog

    async def _read_catalog(self) -> None:
        engines = list(self._synthesizers)
        try:
            infos = await asyncio.gather(*(self._synthesizers[name].describe.remote() for name in engines))
        except Exception:
            if self._catalog is None:
                raise
            logger.warning("could not refresh the engines' voices; keeping the last answer", exc_info=True)
            return
        self._catalog = EngineCatalog(infos, self.settings.engine)
        self._catalog_at = time.monotonic()

    def engine_of(self, job: SpeechJob) -> EngineInfo:
        assert self._catalog is not None  # validate() made the job
        return self._catalog.info(job.engine)

    def default_voice(self, info: EngineInfo) -> str:
        """An engine's default voice: `default_voice` for the default engine where set."""
        if self.settings.default_voice and info.engine == self.settings.engine:
            return self.settings.default_voice
        return info.voices[0].id

    def default_language(self, info: EngineInfo) -> str:
        if self.settings.default_language and self.settings.default_language in info.languages:
            return self.settings.default_language
        return info.default_language

    async def validate(self, request: SpeechParams) -> SpeechJob:
        settings = self.settings
        catalog = await self.catalog()
        requested = catalog.info(request.engine) if request.engine else None
        format_name = audio_format(request.format or settings.default_format).name
        if not settings.min_speed <= request.speed <= settings.max_speed:
            raise SpeedOutOfRangeError(
                f"speed {request.speed} is out of range; use a value from "
                f"{settings.min_speed} to {settings.max_speed} (1.0 is normal speed)"
            )
        text = check_text(request.text, settings.max_text_chars)
        sampling = Sampling(**request.sampling.model_dump()) if request.sampling else Sampling()
        normalize = settings.normalize_text if request.normalize is None else request.normalize
        if request.voice and request.voice_url:
            raise InvalidRequestError("send either voice or voice_url, not both")
        # Captions (TTS requests and jobs ask for them) time each word.
        timed = bool(getattr(request, "captions", None))
        # Last: a voice_url may download and clone, which bad text must not cost.
        if request.voice_url:
            info = catalog.cloning_engine(request.engine)
            language = self._language(request.language, info)
            voice, hit = await self._profiles.from_url.remote(request.voice_url, language, info.engine)
            digest = hashlib.sha256(f"{info.engine} {request.voice_url}".encode()).hexdigest()[:12]
            return SpeechJob(
                text, info.engine, voice, "url_" + digest, language, format_name, request.speed, sampling, hit,
                normalize, timed,
            )
        default_engine = requested or catalog.default
        preset = catalog.find_preset(request.voice or self._qualified_default(default_engine))
        if preset is not None:
            self._same_engine(requested, preset.engine, request.voice)
            language = self._language(request.language, preset.info, preset.voice_id)
            return SpeechJob(
                text, preset.engine, preset.voice_id, catalog.public_id(preset), language, format_name,
                request.speed, sampling, normalize=normalize, timed=timed,
            )
        voice_id = request.voice or ""
        try:
            record, voice = await self._profiles.get.remote(voice_id)
        except NotFoundError:
            raise UnknownVoiceError(
                f"voice {voice_id!r} does not exist; built-in voices: "
                f"{', '.join(catalog.all_voice_ids())}. GET /v1/voices lists them and your clones."
            ) from None
        if record.engine not in catalog.engines:
            raise IncompatibleVoiceError(
                f"voice {voice_id!r} was cloned with engine {record.engine}, which this service does not run "
                f"(it runs {', '.join(catalog.engines)}); clone it again from its reference audio"
            )
        info = catalog.info(record.engine)
        self._same_engine(requested, info.engine, voice_id)
        check_compatible(voice, info.engine, info.model, f"voice {voice_id!r}")
        # A clone speaks the language it was made for unless asked otherwise.
        language = self._language(request.language or record.language, info)
        return SpeechJob(
            text, info.engine, voice, voice_id, language, format_name, request.speed, sampling, normalize=normalize,
            timed=timed,
        )

    def public_voice_id(self, info: EngineInfo, voice_id: str) -> str:
        """How lists and answers name `info`'s preset `voice_id`."""
        assert self._catalog is not None
        if SEPARATOR in voice_id:
            return voice_id
        return self._catalog.public_id(Preset(info, voice_id))

    def _qualified_default(self, info: EngineInfo) -> str:
        voice = self.default_voice(info)
        return voice if SEPARATOR in voice else qualified(info.engine, voice)

    @staticmethod
    def _same_engine(requested: EngineInfo | None, engine: str, voice_id: str | None) -> None:
        # One text, one voice, one engine: a voice is only spoken by its own.
        if requested is not None and voice_id and requested.engine != engine:
            raise IncompatibleVoiceError(
                f"voice {voice_id!r} belongs to engine {engine}, not {requested.engine}; "
                "send one of that engine's voices, or leave engine out"
            )

    def _language(self, requested: str | None, info: EngineInfo, voice: Voice | None = None) -> str:
        supported = info.languages if voice is None else info.languages_for(voice)
        # A voice that speaks one language (Piper) speaks it unless asked otherwise.
        default = supported[0] if len(supported) == 1 else self.default_language(info)
        return resolve_language(requested or default, supported, info.engine)

    def _chunk_chars(self, info: EngineInfo, language: str) -> int:
        return self.settings.chunk_chars or info.chunk_chars_for(language)

    async def chunks(self, job: SpeechJob) -> list[Chunk]:
        head, rest = await self._chunk_head(job)
        tail = rest() if rest else None  # both under way at once
        return [*await head, *(await tail if tail else [])]

    async def _chunk_head(
        self, job: SpeechJob
    ) -> tuple[Awaitable[list[Chunk]], Callable[[], Awaitable[list[Chunk]]] | None]:
        """The chunker's answer for the text's head, under way, and a call
        that asks for the rest's (None: the head is all): however long the
        text, its first chunks come back as fast as a short text's."""
        info = self.engine_of(job)
        max_chars = self._chunk_chars(info, job.language)
        head, tail = split_head(job.text, max_chars, job.language)
        chunk = self._chunker.chunk.remote
        head_chunks = chunk(head, max_chars, job.language, job.normalize, self.settings.first_chunk_chars, job.timed)
        if tail is None:
            return head_chunks, None
        return head_chunks, lambda: chunk(tail, max_chars, job.language, job.normalize, None, job.timed)

    async def synthesize(
        self, job: SpeechJob, progress: Progress | None = None, admitted: bool = False, deadline: float | None = None
    ) -> Speech:
        """`admitted`: the caller bounds its own load (jobs, by
        jobs.max_running_per_replica), so it is never refused for overload;
        otherwise a request is refused with 503 overloaded when its work
        would wait too long to start or end after `deadline` (the client's,
        on the monotonic clock), which also stops it."""
        if not admitted:
            # Before the cache lookup and the chunking: a refusal costs nothing
            # downstream, and under a flood lookups would queue at the StorageActor.
            self._admit(job, len(job.text), deadline)
        # In the backlog from the moment it is let in (no await between), so
        # requests arriving during its cache lookup are judged with it.
        request = nullcontext() if admitted else self.backlogs[job.engine].request()
        with request, self._in_backlog(job, len(job.text)) as work:
            return await self._synthesize_or_reuse(job, progress, admitted, deadline, work)

    async def _synthesize_or_reuse(
        self, job: SpeechJob, progress: Progress | None, admitted: bool, deadline: float | None, work: Work
    ) -> Speech:
        if not self.settings.response_cache.enabled:
            return await self._synthesize(job, progress, admitted, deadline)
        keys = await self._cache_keys(job)
        cached = await self._cached(job, keys)
        if cached is not None:
            work.drop()  # a hit says nothing of how fast the graph synthesizes
            self.cache_hits += 1
            metrics.count("voicegraph_response_cache", result="hit")
            if progress is not None:
                progress(len(cached.chunks), len(cached.chunks))
            return cached
        self.cache_misses += 1
        metrics.count("voicegraph_response_cache", result="miss")
        speech = replace(await self._synthesize(job, progress, admitted, deadline), cache_hit=False)
        self._cache_later(keys, speech)
        return speech

    async def _cache_keys(self, job: SpeechJob) -> tuple[str, str]:
        info = self.engine_of(job)
        digest = cache_key(
            text=job.text,
            normalize=job.normalize,
            voice=job.voice,
            language=job.language,
            speed=job.speed,
            format_name=job.format,
            sampling=job.sampling,
            engine=info.engine,
            model=info.model,
            chunk_chars=self._chunk_chars(info, job.language),
            settings=self.settings,
            timed=job.timed,
        )
        return response_cache_keys(digest, audio_format(job.format).extension)

    async def _cached(self, job: SpeechJob, keys: tuple[str, str]) -> Speech | None:
        """The entry at `keys`, or None. Never raises: a cache that cannot be
        read (bucket down, slow, a broken entry) only costs a synthesis."""
        audio_key, sidecar_key = keys

        async def read() -> CachedSpeech | None:
            document = await self._storage.find.remote(sidecar_key)
            if document is None:
                return None  # the usual miss
            data = await self._storage.get.remote(audio_key)
            return await asyncio.to_thread(from_sidecar, document, data)

        try:
            entry = await asyncio.wait_for(read(), self.settings.response_cache.lookup_timeout_s)
        except NotFoundError:
            return None
        except Exception as exc:
            logger.warning("response cache lookup of %s failed, synthesizing: %r", sidecar_key, exc)
            return None
        if entry is None:
            return None
        captions = None if entry.captions is None else tuple(captions_from_json(entry.captions))
        return Speech(
            job=job, audio=entry.audio, chunks=entry.chunks, cache_hit=True, word_captions=captions,
            words_estimated=entry.words_estimated,
        )

    def _cache_later(self, keys: tuple[str, str], speech: Speech) -> None:
        # In the background: the response does not wait for storage.
        if len(speech.audio.data) > self.settings.response_cache.max_entry_bytes:
            return
        task = asyncio.get_running_loop().create_task(self._cache_write(keys, speech))
        self._cache_writes.add(task)
        task.add_done_callback(self._cache_writes.discard)

    async def _cache_write(self, keys: tuple[str, str], speech: Speech) -> None:
        audio_key, sidecar_key = keys
        audio = speech.audio
        try:
            captions = None if speech.word_captions is None else to_json(list(speech.word_captions))
            document = await asyncio.to_thread(sidecar, audio, speech.chunks, captions, speech.words_estimated)
            await self._storage.put.remote(audio_key, audio.data, audio.content_type)
            await self._storage.put.remote(sidecar_key, document, "application/json")
        except Exception:
            logger.warning("could not write response cache entry %s", sidecar_key, exc_info=True)

    async def _synthesize(
        self, job: SpeechJob, progress: Progress | None, admitted: bool, deadline: float | None
    ) -> Speech:
        timeout_s = self.settings.request_timeout_s
        whose = "the service's request_timeout_s"
        if deadline is not None and deadline - time.monotonic() < timeout_s:
            timeout_s, whose = max(0.0, deadline - time.monotonic()), "the request's deadline"
        try:
            return await asyncio.wait_for(self._run_graph(job, progress, admitted, deadline), timeout_s)
        except TimeoutError:
            raise UpstreamTimeoutError(f"synthesis did not finish within {whose} ({timeout_s:.3g} s)") from None

    async def _run_graph(
        self, job: SpeechJob, progress: Progress | None, admitted: bool, deadline: float | None
    ) -> Speech:
        info = self.engine_of(job)
        chunks = await self.chunks(job)
        if not admitted:
            self._admit_chunks(job, len(chunks))
        done = 0

        async def counted(chunk: str) -> np.ndarray | TimedAudio:
            nonlocal done
            pcm = await self._synthesize_chunk(chunk, job)
            done += 1
            if progress is not None:
                progress(done, len(chunks))
            return pcm

        if progress is not None:
            progress(0, len(chunks))
        tasks = [asyncio.ensure_future(counted(chunk.text)) for chunk in chunks]
        try:
            results: list = await asyncio.gather(*tasks)
        except BaseException as exc:
            # One chunk failed, the deadline passed or the client went away:
            # the others are wasted work.
            self._cancel(tasks, _why_cancelled(exc, deadline))
            raise
        parts = [result.pcm if job.timed else result for result in results]
        audio = await self._stitch(parts, info.sample_rate_for(job.voice), job.format)
        speech = Speech(
            job=job,
            audio=audio,
            chunks=tuple(chunk.text for chunk in chunks),
            sentences=tuple(chunk.sentences for chunk in chunks),
        )
        if not job.timed:
            return speech
        captions = word_captions(
            [chunk.spoken for chunk in chunks],
            [result.words for result in results],
            list(audio.chunk_durations_s),
            self._pause_s(audio),
        )
        estimated = any(result.words_estimated for result in results)
        return replace(speech, word_captions=tuple(captions), words_estimated=estimated)

    async def _stitch(self, parts: list[np.ndarray], sample_rate: int, format_name: str) -> StitchedAudio:
        """One file from the parts. WAV and PCM are joined here: scaling int16
        costs less than sending the parts to a Stitcher and the file back.
        Where the codec allows, runs of chunks are encoded as segments, in
        parallel across Stitcher replicas, and joined; else the Stitcher
        encodes the whole in one pass."""
        if audio_format(format_name).ffmpeg_format is None:
            return await asyncio.to_thread(self._audio.stitch, parts, sample_rate, format_name)
        plan = await asyncio.to_thread(self._audio.plan, parts, sample_rate, format_name)
        if plan is None:
            return await self._stitcher.stitch.remote(parts, sample_rate, format_name)
        segments = await asyncio.gather(
            *(self._stitcher.encode_segment.remote(run, index, plan) for index, run in enumerate(plan.segments(parts)))
        )
        return self._audio.join_segments(plan, list(segments))

    async def stream(self, job: SpeechJob, deadline: float | None = None) -> AsyncIterator[np.ndarray]:
        """The job's audio, chunk by chunk in order, as stream pieces.

        The first chunk is synthesized alone, from the text's head; then up
        to `stream_lookahead_chunks` chunks are synthesized ahead of the
        one being sent, across replicas, so memory stays flat for any length
        of text; when the consumer stops (the client went away), the chunks
        under way are cancelled and no more are started. A stream is refused
        for overload before it starts (the client gets a 503); once admitted,
        its chunks wait for room in the Synthesizer's queue. `deadline` is
        the client's for the first piece: a stream that could not start by
        then is refused.
        """
        started = time.perf_counter()
        info = self.engine_of(job)
        settings = self.settings
        head, chunk_rest = await self._chunk_head(job)
        waiting = deque(await head)  # chunks not started yet, in order
        rest: asyncio.Future | None = None  # the rest's chunks, asked for once the first audio is out
        lookahead = settings.stream_lookahead_chunks
        # What must be done by the deadline is its first chunk; it holds at
        # most its look-ahead in flight.
        self._admit(job, len(waiting[0].text) if waiting else 0, deadline)
        self._admit_chunks(job, lookahead if chunk_rest else min(len(waiting), lookahead))
        ahead: deque[asyncio.Task] = deque()

        def ask_for_the_rest() -> None:
            nonlocal rest, chunk_rest
            if chunk_rest:
                rest, chunk_rest = asyncio.ensure_future(chunk_rest()), None

        def start(limit: int) -> None:
            nonlocal rest
            if rest is not None and rest.done():
                waiting.extend(rest.result())
                rest = None
            while len(ahead) < limit and waiting:
                ahead.append(asyncio.ensure_future(self._stream_chunk(waiting.popleft().text, job)))

        in_pieces = info.streams_within_chunks and settings.stream_first_chunk_in_pieces and bool(waiting)
        first_in_pieces: AsyncIterator[np.ndarray] | None = None

        def first_audio_out() -> None:
            metrics.observe("voicegraph_time_to_first_audio_s", time.perf_counter() - started)
            ask_for_the_rest()  # only now, so chunking it does not slow the first audio

        with self.backlogs[job.engine].request():
            self.open_streams += 1
            why = "client_left"  # why chunks still under way at the end are taken back
            try:
                if in_pieces:
                    # The first chunk in pieces as it is generated; the
                    # look-ahead starts with its first piece.
                    shaped = ChunkInPieces(info.sample_rate_for(job.voice), settings.fade_ms, settings.peak_dbfs)
                    first_in_pieces = self._stream_chunk_pieces(waiting.popleft().text, job)
                    out_yet = False
                    async for piece in first_in_pieces:
                        out = shaped.feed(piece)
                        if len(out):
                            if not out_yet:
                                out_yet = True
                                first_audio_out()
                                start(lookahead)
                            yield out
                    if not out_yet:
                        first_audio_out()
                    yield shaped.close()
                    first_in_pieces = None
                for index in itertools.count(1 if in_pieces else 0):
                    # The first chunk alone: its audio is what the listener waits for.
                    start(lookahead if index else 1)
                    if not ahead:
                        ask_for_the_rest()  # (a head whose chunks were all spoken, or none)
                        if rest is not None:
                            waiting.extend(await rest)
                            rest = None
                            start(lookahead)
                    if not ahead:
                        return
                    part = await ahead.popleft()
                    if index == 0:
                        first_audio_out()
                        start(lookahead - 1)  # the rest of the look-ahead, while this piece goes out
                    yield stream_piece(
                        part, index, info.sample_rate_for(job.voice), settings.pause_ms, settings.fade_ms,
                        settings.peak_dbfs,
                    )
            except BaseException as exc:  # GeneratorExit: the consumer closed the stream
                why = _why_cancelled(exc, deadline)
                raise
            finally:
                self.open_streams -= 1
                self._cancel(ahead, why)
                if first_in_pieces is not None:  # left while its first chunk streamed
                    await first_in_pieces.aclose()
                    self._count_cancelled(why)
                if rest is not None:
                    rest.cancel()

    def _admit(self, job: SpeechJob, chars: int, deadline: float | None) -> None:
        """Refuse work of `chars` characters that would wait longer than
        admission.max_queue_wait_s to start or end after its deadline, behind
        the work under way on the job's engine."""
        settings = self.settings
        left_s = None if deadline is None else deadline - time.monotonic()
        if left_s is not None and left_s <= 0:
            raise DeadlineTooShortError(
                "the request's deadline passed before its work could start; allow more time (X-Request-Timeout)"
            )
        verdict = self.backlogs[job.engine].judge(
            chars,
            settings.admission.max_queue_wait_s,
            left_s,
            settings.admission.cold_start_requests,
            settings.admission.estimate_margin,
        )
        if verdict.wait_s is not None:
            metrics.set_gauge("voicegraph_queue_wait_s", verdict.wait_s, engine=job.engine)
        if verdict.cause == "too_short":
            raise DeadlineTooShortError(
                f"the request cannot finish before its deadline: {verdict.reason}; "
                "allow more time (X-Request-Timeout) or send a shorter text"
            )
        if not verdict.admitted:
            raise self.overloaded(verdict.reason, verdict.cause, verdict.retry_after_s)

    def _admit_chunks(self, job: SpeechJob, chunks: int) -> None:
        """Refuse a request whose chunks would take this replica over
        max_chunks_in_flight, before any is sent."""
        limit = self.settings.max_chunks_in_flight
        if self.chunks_in_flight and self.chunks_in_flight + chunks > limit:
            raise self.overloaded(
                f"{self.chunks_in_flight} chunks under way here, this request adds {chunks}, the limit is {limit}",
                "chunks_in_flight",
                self.backlogs[job.engine].wait_s(),
            )

    def overloaded(self, why: str, reason: str = "queue_full", retry_after_s: float | None = None) -> OverloadedError:
        """The 503 for a full graph, counted by `reason`; `why` says it to the
        client. Without an estimate, the wait told is overload_retry_after_s."""
        metrics.count("voicegraph_overloaded", reason=reason)
        wait_s = self.settings.overload_retry_after_s if retry_after_s is None else retry_after_s
        return OverloadedError(f"the service is at capacity: {why}; retry after {max(1, math.ceil(wait_s))} s", wait_s)

    def _cancel(self, tasks, why: str) -> None:
        """Take back the chunks not yet back, counted by why (a gather that
        was cancelled has already cancelled its own)."""
        for task in tasks:
            if task.cancelled() or not task.done():
                task.cancel()
                self._count_cancelled(why)

    def _count_cancelled(self, why: str) -> None:
        self.chunks_cancelled[why] += 1
        metrics.count("voicegraph_chunks_cancelled", reason=why)

    @contextmanager
    def _in_backlog(self, job: SpeechJob, chars: int) -> Iterator[Work]:
        """Work admission counts, from when it is let in until its audio is
        ready: chunking, stitching and encoding too, which on a fast engine
        cost more than synthesis."""
        work = self.backlogs[job.engine].start(chars)
        try:
            yield work
        except BaseException:
            work.drop()
            raise
        work.finish()

    async def _stream_chunk(self, chunk: str, job: SpeechJob) -> np.ndarray:
        # A stream's work is its chunks as they are started: its text may be
        # long and its listener slow, so the whole would overstate what waits.
        with self._in_backlog(job, len(chunk)):
            return await self._synthesize_chunk(chunk, job)

    async def _stream_chunk_pieces(self, chunk: str, job: SpeechJob) -> AsyncIterator[np.ndarray]:
        """One chunk in pieces as the Synthesizer makes them. A replica that is
        full, broken or gone before the first piece: the chunk goes the
        whole-chunk way, with its waits and resends, and comes as one piece.
        After the first piece a failure ends the stream: what was sent is out."""
        with self._in_backlog(job, len(chunk)), self._in_flight():
            pieces = self._synthesizer_for(job).options(stream=True).synthesize_pieces.remote(
                chunk, job.voice, job.language, job.speed, job.sampling
            )
            sent = False
            try:
                async for piece in pieces:
                    sent = True
                    yield piece
            except (BackPressureError, ReplicaFaultError, RayActorError) as exc:
                if sent:
                    raise
                logger.warning("streaming a chunk in pieces failed before its first (%r): sending it whole", exc)
                yield await self._send_chunk(chunk, job)
            finally:
                pieces.cancel()

    def _synthesizer_for(self, job: SpeechJob):
        """The job's engine's Synthesizer; for a voice that is a model of its
        own (Piper), routed to replicas that hold it."""
        model_key = self.engine_of(job).model_key_for(job.voice)
        handle = self._routed.get((job.engine, model_key))
        if handle is None:
            handle = self._synthesizers[job.engine]
            if model_key is not None:
                handle = handle.options(multiplexed_model_id=model_key)
            self._routed[(job.engine, model_key)] = handle
        return handle

    async def _synthesize_chunk(self, chunk: str, job: SpeechJob) -> np.ndarray:
        with self._in_flight():
            return await self._send_chunk(chunk, job)

    @contextmanager
    def _in_flight(self) -> Iterator[None]:
        """A chunk sent to the Synthesizers: in flight until its audio is back
        (done) or it failed or was taken back (not done)."""
        self.chunks_in_flight += 1
        try:
            yield
        finally:
            self.chunks_in_flight -= 1
        self.chunks_done += 1

    async def _send_chunk(self, chunk: str, job: SpeechJob) -> np.ndarray | TimedAudio:
        options = self.settings.synthesizer
        # The replica is broken (it said so) or gone (killed, OOM, node lost):
        # the chunk itself is fine, so another replica gets it.
        policy = Retry(
            retry_on=(ReplicaFaultError, RayActorError),
            retries=options.replica_fault_retries,
            initial_s=options.replica_fault_backoff_s,
            max_s=options.replica_fault_backoff_s,
        )

        # With captions, each word's time too.
        method = "synthesize_timed" if job.timed else "synthesize"

        async def send() -> np.ndarray | TimedAudio:
            response = getattr(self._synthesizer_for(job), method).remote(
                chunk, job.voice, job.language, job.speed, job.sampling
            )
            try:
                return await response
            except asyncio.CancelledError:
                response.cancel()
                raise

        async def send_when_queued() -> np.ndarray | TimedAudio:
            # Admitted work is not refused halfway: a full Synthesizer queue is waited out.
            return await retry_async(send, _WAIT_FOR_CAPACITY)

        return await retry_async(send_when_queued, policy, on_retry=_log_replica_fault)

    def _pause_s(self, audio: StitchedAudio) -> float:
        # The pause join_chunks put between chunks: whole samples, as it cuts it.
        return ms_to_samples(audio.sample_rate, self.settings.pause_ms) / audio.sample_rate

    def captions(self, speech: Speech, fmt: CaptionFormat) -> str | list:
        """Sentence captions with their words where the job was timed; else
        sentence timestamps from the chunks' real durations."""
        if speech.word_captions is not None:
            return render(list(speech.word_captions), fmt)[0]
        audio = speech.audio
        sentences = speech.sentences
        if sentences is None:
            sentences = tuple(split_sentences(chunk, speech.job.language) for chunk in speech.chunks)
        captions = caption_chunks(sentences, list(audio.chunk_durations_s), self._pause_s(audio))
        return render(captions, fmt)[0]

    async def save(self, speech: Speech) -> StoredObject:
        return await self._storage.save_generation.remote(speech.audio, speech.job.voice_id)


# The Synthesizer's queue is full: look again soon, spread out so the
# waiting callers do not all come back at once. The request timeout bounds it.
_WAIT_FOR_CAPACITY = Retry(retry_on=(BackPressureError,), initial_s=0.1, max_s=2.0, jitter=True)


def _why_cancelled(exc: BaseException, deadline: float | None) -> str:
    # Serve cancels a request's calls to other deployments itself when its
    # client disconnects: the first to notice may be a chunk's response.
    if not isinstance(exc, (asyncio.CancelledError, GeneratorExit, RequestCancelledError)):
        return "failed"
    # A deadline is enforced by cancelling, as a client that leaves is
    # (asyncio's timer may fire a hair early by time.monotonic()).
    return "deadline" if deadline is not None and time.monotonic() >= deadline - 0.01 else "client_left"


def _log_replica_fault(exc: BaseException, failures: int, delay_s: float) -> None:
    metrics.count("voicegraph_replica_fault_resends")
    logger.warning("replica fault, resending the chunk: %s", exc)
