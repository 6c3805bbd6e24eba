"""The ingress's request path with stand-in handles: faults Serve cannot be made to produce on a CPU."""

import asyncio

import numpy as np
import pytest

from serve_app.tts.serving import SpeechJob, TTSServing
from tests.helpers.handles import Call, Response
from voicegraph.core.errors import OverloadedError, ReplicaFaultError
from voicegraph.core.settings import Settings
from voicegraph.engines.base import EngineInfo, VoiceInfo
from voicegraph.engines.catalog import EngineCatalog
from voicegraph.text.chunking import Chunk


class Method:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def remote(self, *args):
        self.calls += 1
        return Response(self.outcomes.pop(0))


class Synthesizer:
    def __init__(self, outcomes):
        self.synthesize = Method(outcomes)


def serving_one(info: EngineInfo) -> EngineCatalog:
    """The catalog of a service running the one stand-in engine."""
    return EngineCatalog([info], info.engine)


TEST_ENGINE = EngineInfo("test", "test", 1000, ("en-us",), (VoiceInfo("default", "default", "en-us"),), "en-us", {"*": 400})


def serving(outcomes, retries=3):
    settings = Settings(synthesizer={"replica_fault_retries": retries, "replica_fault_backoff_s": 0})
    tts = TTSServing(settings, None, {"test": Synthesizer(outcomes)}, None, None, None)
    tts._catalog = serving_one(TEST_ENGINE)
    return tts


JOB = SpeechJob("Hello.", "test", "default", "default", "en-us", "wav", 1.0)
AUDIO = np.ones(4, dtype=np.float32)


def test_a_chunk_hit_by_a_replica_fault_is_sent_again(recorded_metrics):
    tts = serving([ReplicaFaultError("illegal memory access"), ReplicaFaultError("still broken"), AUDIO])
    assert asyncio.run(tts._synthesize_chunk("Hello.", JOB)) is AUDIO
    assert tts._synthesizers["test"].synthesize.calls == 3
    assert recorded_metrics.total("voicegraph_replica_fault_resends") == 2


def test_a_chunk_whose_replica_died_is_sent_again():
    from ray.exceptions import ActorDiedError, ActorUnavailableError

    tts = serving([ActorDiedError(), ActorUnavailableError("unreachable", None), AUDIO])
    assert asyncio.run(tts._synthesize_chunk("Hello.", JOB)) is AUDIO
    assert tts._synthesizers["test"].synthesize.calls == 3


def test_replica_faults_beyond_the_retries_fail_the_request():
    tts = serving([ReplicaFaultError("broken")] * 3, retries=2)
    with pytest.raises(ReplicaFaultError):
        asyncio.run(tts._synthesize_chunk("Hello.", JOB))
    assert tts._synthesizers["test"].synthesize.calls == 3


def test_other_errors_are_not_resent():
    tts = serving([ValueError("bug")])
    with pytest.raises(ValueError):
        asyncio.run(tts._synthesize_chunk("Hello.", JOB))
    assert tts._synthesizers["test"].synthesize.calls == 1


class GatedResponse:
    """A chunk's synthesis that finishes when the test says so."""

    def __init__(self, chunk: str, tracker: "GatedSynthesizer"):
        self.chunk = chunk
        self.tracker = tracker
        self.release = asyncio.Event()
        self.cancelled = False

    def __await__(self):
        async def resolve():
            self.tracker.running += 1
            self.tracker.peak = max(self.tracker.peak, self.tracker.running)
            try:
                await self.release.wait()
            finally:
                self.tracker.running -= 1
            return np.zeros(len(self.chunk), dtype=np.float32)

        return resolve().__await__()

    def cancel(self):
        self.cancelled = True


class GatedSynthesizer:
    def __init__(self):
        self.started: list[GatedResponse] = []
        self.running = 0
        self.peak = 0
        outer = self

        class _Method:
            def remote(self, chunk, *args):
                response = GatedResponse(chunk, outer)
                outer.started.append(response)
                return response

        self.synthesize = _Method()


class Chunker:
    def __init__(self, chunks):
        self.chunks = [Chunk((chunk,)) for chunk in chunks]
        outer = self

        class _Method:
            def remote(self, *args):
                return Response(outer.chunks)

        self.chunk = _Method()


def streaming(chunks, lookahead):
    from voicegraph.engines.base import EngineInfo, VoiceInfo

    settings = Settings(stream_lookahead_chunks=lookahead, pause_ms=0, fade_ms=0)
    synthesizer = GatedSynthesizer()
    tts = TTSServing(settings, Chunker(chunks), {"test": synthesizer}, None, None, None)
    tts._catalog = serving_one(EngineInfo("test", "test", 1000, ("en-us",), (VoiceInfo("default", "default", "en-us"),), "en-us", {"*": 400}))
    return tts, synthesizer


CHUNKS = [("x" * n) + "." for n in range(1, 13)]  # told apart by their length


@pytest.mark.parametrize("lookahead", [1, 3, 5])
def test_stream_keeps_order_and_at_most_lookahead_chunks_under_way(lookahead):
    tts, synthesizer = streaming(CHUNKS, lookahead)

    async def run():
        pieces = tts.stream(JOB)
        received = []

        async def consume():
            async for piece in pieces:
                received.append(len(piece))

        consumer = asyncio.ensure_future(consume())
        # Finish the chunks under way last-started first: out of order.
        while not consumer.done():
            await asyncio.sleep(0)
            waiting = [r for r in synthesizer.started if not r.release.is_set()]
            if waiting:
                waiting[-1].release.set()
        await consumer
        return received

    assert asyncio.run(run()) == [len(chunk) for chunk in CHUNKS]
    assert synthesizer.peak <= lookahead
    assert len(synthesizer.started) == len(CHUNKS)


def test_closing_a_stream_cancels_the_chunks_under_way_and_starts_no_more():
    tts, synthesizer = streaming(CHUNKS, 4)

    async def run():
        pieces = tts.stream(JOB)
        first = asyncio.ensure_future(pieces.__anext__())
        while not synthesizer.started:
            await asyncio.sleep(0)
        synthesizer.started[0].release.set()
        await first
        await pieces.aclose()  # what a client going away does
        await asyncio.sleep(0.01)

    asyncio.run(run())
    assert len(synthesizer.started) == 4  # the first and the lookahead; nothing after
    assert [r.cancelled for r in synthesizer.started] == [False, True, True, True]
    assert tts.open_streams == 0 and tts.chunks_in_flight == 0
    assert tts.chunks_cancelled == {"client_left": 3}
    assert (tts.backlogs["test"].chars, tts.backlogs["test"].items) == (0, 0)


def test_work_still_under_way_when_its_deadline_passes_is_stopped_and_taken_back(recorded_metrics):
    import time

    from voicegraph.core.errors import UpstreamTimeoutError

    tts, synthesizer = streaming(CHUNKS[:5], 4)
    tts.settings = Settings(response_cache={"enabled": False}, pause_ms=0, fade_ms=0)

    async def run():
        # Nothing ahead, so it is let in; no chunk ever comes back.
        await tts.synthesize(JOB, deadline=time.monotonic() + 0.3)

    with pytest.raises(UpstreamTimeoutError, match="the request's deadline"):
        asyncio.run(run())
    assert len(synthesizer.started) == 5 and all(r.cancelled for r in synthesizer.started)
    assert tts.chunks_cancelled == {"deadline": 5}
    assert recorded_metrics.total("voicegraph_chunks_cancelled", reason="deadline") == 5
    assert (tts.backlogs["test"].chars, tts.backlogs["test"].items, tts.chunks_in_flight) == (0, 0, 0)


class Storage:
    def __init__(self, broken: bool = False):
        from voicegraph.core.errors import NotFoundError, StorageError

        self.files: dict[str, bytes] = {}

        def get(key):
            if broken:
                raise StorageError("the bucket is down")
            if key not in self.files:
                raise NotFoundError(key)
            return self.files[key]

        def find(key):
            if broken:
                raise StorageError("the bucket is down")
            return self.files.get(key)

        def put(key, data, content_type):
            if broken:
                raise StorageError("the bucket is down")
            self.files[key] = data

        self.get, self.find, self.put = Call(get), Call(find), Call(put)


def cached_serving(storage, **cache):
    from voicegraph.audio.stitching import Stitcher
    from voicegraph.engines.base import EngineInfo, VoiceInfo

    settings = Settings(response_cache=cache, pause_ms=0, fade_ms=0)
    stitcher = Stitcher(settings)
    tts = TTSServing(
        settings,
        Chunker(["Hello.", "How are you?"]),
        {"test": type("Synth", (), {"synthesize": Call(lambda chunk, *rest: np.full(len(chunk) * 10, 0.1, np.float32))})()},
        type("Stitch", (), {"stitch": Call(stitcher.stitch)})(),
        storage,
        None,
    )
    tts._catalog = serving_one(EngineInfo("test", "test", 1000, ("en-us",), (VoiceInfo("default", "default", "en-us"),), "en-us", {"*": 400}))
    return tts


def speak_twice(tts):
    async def run():
        progress = []
        first = await tts.synthesize(JOB, lambda *p: progress.append(p))
        await asyncio.gather(*tts._cache_writes)
        second = await tts.synthesize(JOB, lambda *p: progress.append(p))
        await asyncio.gather(*tts._cache_writes)
        return first, second, progress

    return asyncio.run(run())


def test_an_identical_request_is_served_from_the_cache():
    storage = Storage()
    tts = cached_serving(storage)
    first, second, progress = speak_twice(tts)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.audio == first.audio and second.chunks == first.chunks == ("Hello.", "How are you?")
    # A hit keeps the chunks' text only; its captions split it, to the same cues.
    assert first.sentences == (("Hello.",), ("How are you?",)) and second.sentences is None
    assert tts.captions(second, "json") == tts.captions(first, "json")
    assert len(tts._synthesizers["test"].synthesize.calls) == 2  # the first request's two chunks only
    assert (tts.cache_hits, tts.cache_misses) == (1, 1)
    assert progress[-1] == (2, 2)  # a hit shows a finished job
    # The sidecar is read first (a miss is None, not an error), and written last.
    audio_key, sidecar_key = (args[0] for args in storage.put.calls)
    assert audio_key.endswith(".wav") and sidecar_key == audio_key.removesuffix("wav") + "json"
    assert [args[0] for args in storage.find.calls] == [sidecar_key, sidecar_key]
    assert [args[0] for args in storage.get.calls] == [audio_key]


def test_turned_off_the_cache_never_touches_storage():
    storage = Storage()
    tts = cached_serving(storage, enabled=False)
    first, second, _ = speak_twice(tts)
    assert first.cache_hit is second.cache_hit is None
    assert storage.get.calls == storage.find.calls == storage.put.calls == []
    assert len(tts._synthesizers["test"].synthesize.calls) == 4
    assert (tts.cache_hits, tts.cache_misses) == (0, 0)


def test_a_broken_bucket_only_costs_a_synthesis():
    storage = Storage(broken=True)
    tts = cached_serving(storage)
    first, second, _ = speak_twice(tts)
    assert first.cache_hit is second.cache_hit is False
    assert second.audio.data == first.audio.data
    # Tried and failed quietly; with no audio written, no sidecar is either.
    assert [args[0][-4:] for args in storage.put.calls] == [".wav", ".wav"]
    assert (tts.cache_hits, tts.cache_misses) == (0, 2)


def test_audio_over_the_limit_is_not_cached():
    storage = Storage()
    tts = cached_serving(storage, max_entry_bytes=10)
    first, second, _ = speak_twice(tts)
    assert first.cache_hit is second.cache_hit is False
    assert storage.put.calls == [] and storage.files == {}


def full_queue():
    from ray.serve.exceptions import BackPressureError

    return BackPressureError(num_queued_requests=4, max_queued_requests=4)


def test_a_full_synthesizer_queue_is_waited_out():
    tts = serving([full_queue(), full_queue(), full_queue(), AUDIO])
    assert asyncio.run(tts._synthesize_chunk("Hello.", JOB)) is AUDIO
    assert tts._synthesizers["test"].synthesize.calls == 4


@pytest.mark.parametrize(
    ("in_flight", "chunks", "admitted"),
    [
        (0, 50, True),  # alone, a request is always let in, however long
        (6, 2, True),  # exactly at the limit
        (6, 3, False),
        (8, 1, False),
    ],
)
def test_a_request_over_the_chunk_budget_is_refused_before_any_chunk_is_sent(in_flight, chunks, admitted, recorded_metrics):
    tts = TTSServing(Settings(max_chunks_in_flight=8, overload_retry_after_s=3), None, {"test": None}, None, None, None)
    tts.chunks_in_flight = in_flight
    if admitted:
        tts._admit_chunks(JOB, chunks)
    else:
        with pytest.raises(OverloadedError, match="limit is 8") as refused:
            tts._admit_chunks(JOB, chunks)
        # No chunk has come back, so there is no estimate: the configured wait.
        assert refused.value.headers() == {"Retry-After": "3"} and refused.value.status_code == 503
    assert recorded_metrics.total("voicegraph_overloaded") == (0 if admitted else 1)


def test_each_engine_is_admitted_behind_its_own_work_only():
    """A queue of slow XTTS work refuses XTTS requests, not eSpeak ones: each
    engine has its own Synthesizers, so its own backlog and speed."""
    from dataclasses import replace

    from voicegraph.access.backlog import Backlog

    now = [0.0]
    synthesizers = {"espeak": None, "xtts": None}  # handles, unused here
    tts = TTSServing(Settings(engines=["espeak", "xtts"], admission={"max_queue_wait_s": 5}), None, synthesizers, None, None, None)
    assert set(tts.backlogs) == {"espeak", "xtts"}
    tts.backlogs = {engine: Backlog(10.0, clock=lambda: now[0]) for engine in tts.backlogs}
    xtts, espeak = tts.backlogs["xtts"], tts.backlogs["espeak"]
    work = xtts.start(100)
    now[0] += 10
    work.finish()  # XTTS: 10 characters a second
    xtts.start(1000)  # 100 s of XTTS work under way
    with pytest.raises(OverloadedError, match="limit is 5 s"):
        tts._admit(replace(JOB, engine="xtts"), 100, None)
    tts._admit(replace(JOB, engine="espeak"), 100, None)
    work = espeak.start(1000)
    now[0] += 1
    work.finish()  # eSpeak: 1,000 characters a second, whatever XTTS does
    assert espeak.wait_s() == 0 and xtts.wait_s() == pytest.approx(100, rel=0.01)


class RecordingChunker:
    """The real chunking, answering like a handle, and remembering what it was asked."""

    def __init__(self):
        self.asked: list[tuple[str, int | None]] = []
        outer = self

        class _Method:
            def remote(self, run, max_chars, language, normalize, first_chunk_chars=None, with_sources=False):
                from voicegraph.text.chunking import speakable_chunks

                outer.asked.append((run, first_chunk_chars))
                return Response(speakable_chunks(run, max_chars, language, normalize, first_chunk_chars))

        self.chunk = _Method()


def test_a_long_text_streams_its_first_chunk_before_the_rest_is_chunked():
    from voicegraph.engines.base import EngineInfo, VoiceInfo

    text = "A first sentence. " + "And then a great deal more text follows it, sentence after sentence. " * 40
    job = SpeechJob(text.strip(), "test", "default", "default", "en-us", "wav", 1.0)
    settings = Settings(stream_lookahead_chunks=3, pause_ms=0, fade_ms=0, first_chunk_chars=50)
    chunker, synthesizer = RecordingChunker(), GatedSynthesizer()
    tts = TTSServing(settings, chunker, {"test": synthesizer}, None, None, None)
    tts._catalog = serving_one(EngineInfo("test", "test", 1000, ("en-us",), (VoiceInfo("default", "default", "en-us"),), "en-us", {"*": 400}))

    async def run():
        pieces = tts.stream(job)
        first = asyncio.ensure_future(pieces.__anext__())
        while not synthesizer.started:
            await asyncio.sleep(0)
        # The first chunk, alone, from the text's head only.
        assert [r.chunk for r in synthesizer.started] == ["A first sentence."]
        head, first_chunk_chars = chunker.asked[0]
        assert len(chunker.asked) == 1 and len(" ".join((*head.sentences, head.unsplit))) <= 400 and first_chunk_chars == 50
        synthesizer.started[0].release.set()
        received = [len(await first)]
        # Only now is the rest of the text chunked.
        assert len(chunker.asked) == 2 and chunker.asked[1][1] is None
        async for piece in _released(pieces, synthesizer):
            received.append(len(piece))
        return received

    streamed = asyncio.run(run())
    chunks = asyncio.run(tts.chunks(job))
    assert streamed == [len(chunk.text) for chunk in chunks]  # the same chunks, in the same order
    assert " ".join(chunk.text for chunk in chunks) == job.text
    assert synthesizer.peak <= 3


async def _released(pieces, synthesizer):
    """The stream's pieces, releasing each chunk's synthesis as it is awaited."""
    consumer = asyncio.ensure_future(pieces.__anext__())
    while True:
        while not consumer.done():
            await asyncio.sleep(0)
            for response in synthesizer.started:
                response.release.set()
        try:
            yield consumer.result()
        except StopAsyncIteration:
            return
        consumer = asyncio.ensure_future(pieces.__anext__())


def test_a_head_that_makes_no_chunks_still_streams_the_rest():
    from voicegraph.engines.base import EngineInfo, VoiceInfo

    class Chunker:
        """Whatever the head normalises to nothing (emoji only, say): no chunks."""

        def __init__(self):
            self.answers = [[], [Chunk(("Then real words.",)), Chunk(("And more of them.",))]]
            outer = self

            class _Method:
                def remote(self, *args):
                    return Response(outer.answers.pop(0))

            self.chunk = _Method()

    job = SpeechJob("\U0001f600. " + "Then real words. And more of them. " * 30, "test", "default", "default", "en-us", "wav", 1.0)
    tts = TTSServing(Settings(pause_ms=0, fade_ms=0), Chunker(), {"test": Synthesizer([np.ones(3, np.float32)] * 2)}, None, None, None)
    tts._catalog = serving_one(EngineInfo("test", "test", 1000, ("en-us",), (VoiceInfo("default", "default", "en-us"),), "en-us", {"*": 400}))

    async def run():
        return [len(piece) async for piece in tts.stream(job)]

    assert asyncio.run(run()) == [3, 3]


# The first chunk in pieces, where the engine streams within a chunk (XTTS).


class PieceStream:
    """A streaming response: `pieces` one by one, each let out by `release`,
    or `error` before any."""

    def __init__(self, pieces, error=None):
        self.pieces, self.error = list(pieces), error
        self.release = asyncio.Event()
        self.cancelled = False
        self.sent = 0

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.error is not None:
            raise self.error
        if self.sent == len(self.pieces):
            raise StopAsyncIteration
        await self.release.wait()
        self.release.clear()
        self.sent += 1
        return self.pieces[self.sent - 1]

    def cancel(self):
        self.cancelled = True


class StreamingSynthesizer(GatedSynthesizer):
    def __init__(self, pieces, error=None):
        super().__init__()
        outer = self
        self.streams: list[PieceStream] = []

        class _Pieces:
            def remote(self, chunk, *args):
                outer.streams.append(PieceStream(pieces, error))
                return outer.streams[-1]

        self.synthesize_pieces = _Pieces()

    def options(self, **kwargs):
        assert kwargs == {"stream": True}
        return self


def streaming_in_pieces(chunks, pieces, error=None):
    from voicegraph.engines.base import EngineInfo, VoiceInfo

    settings = Settings(stream_lookahead_chunks=2, pause_ms=0, fade_ms=0)
    synthesizer = StreamingSynthesizer(pieces, error)
    tts = TTSServing(settings, Chunker(chunks), {"test": synthesizer}, None, None, None)
    voices = (VoiceInfo("default", "default", "en-us"),)
    tts._catalog = serving_one(EngineInfo(
        "test", "test", 1000, ("en-us",), voices, "en-us", {"*": 400}, streams_within_chunks=True
    ))
    return tts, synthesizer


async def until(condition):
    while not condition():
        await asyncio.sleep(0)


def test_the_first_chunk_goes_out_piece_by_piece_and_the_look_ahead_starts_with_its_first_piece():
    pieces = [np.full(3, 0.1, np.float32), np.full(5, 0.2, np.float32), np.full(2, 0.3, np.float32)]
    tts, synthesizer = streaming_in_pieces(CHUNKS[:4], pieces)

    async def run():
        stream = tts.stream(JOB)
        first = asyncio.ensure_future(stream.__anext__())
        await until(lambda: synthesizer.streams)
        assert not synthesizer.started  # nothing else before the first audio
        synthesizer.streams[0].release.set()
        out = [len(await first)]
        assert len(synthesizer.started) == 2  # the look-ahead, started by the first piece
        for _ in pieces[1:]:
            synthesizer.streams[0].release.set()
            out.append(len(await stream.__anext__()))

        async def release_every_chunk():
            while True:
                for response in synthesizer.started:
                    response.release.set()
                await asyncio.sleep(0)

        releasing = asyncio.ensure_future(release_every_chunk())
        rest = [len(piece) async for piece in stream]
        releasing.cancel()
        return out, rest

    out, rest = asyncio.run(run())
    assert out == [3, 5, 2] and rest[0] == 0  # the chunk's end (no fade: nothing held back)
    assert rest[1:] == [len(chunk) for chunk in CHUNKS[1:4]]  # then the other chunks, whole, in order
    assert (tts.open_streams, tts.chunks_in_flight, tts.chunks_done) == (0, 0, 4)
    assert (tts.backlogs["test"].chars, tts.backlogs["test"].items) == (0, 0)


def test_closing_a_stream_mid_first_chunk_takes_its_work_back():
    tts, synthesizer = streaming_in_pieces(CHUNKS[:4], [np.ones(4, np.float32)] * 3)

    async def run():
        stream = tts.stream(JOB)
        first = asyncio.ensure_future(stream.__anext__())
        await until(lambda: synthesizer.streams)
        synthesizer.streams[0].release.set()
        await first
        await stream.aclose()  # what a client going away does

    asyncio.run(run())
    assert synthesizer.streams[0].cancelled
    assert [response.cancelled for response in synthesizer.started] == [True, True]
    assert tts.chunks_cancelled == {"client_left": 3}
    assert (tts.open_streams, tts.chunks_in_flight) == (0, 0)
    assert (tts.backlogs["test"].chars, tts.backlogs["test"].items) == (0, 0)


def test_a_replica_fault_before_the_first_piece_sends_the_chunk_whole():
    tts, synthesizer = streaming_in_pieces(CHUNKS[:2], [], error=ReplicaFaultError("illegal memory access"))

    async def run():
        stream = tts.stream(JOB)
        first = asyncio.ensure_future(stream.__anext__())
        await until(lambda: synthesizer.started)
        for response in synthesizer.started:
            response.release.set()
        out = [len(await first)]
        await until(lambda: len(synthesizer.started) == 2)
        synthesizer.started[1].release.set()
        return out + [len(piece) async for piece in stream]

    out = asyncio.run(run())
    assert out[0] == len(CHUNKS[0]) and out[-1] == len(CHUNKS[1])
    assert tts.chunks_done == 2
