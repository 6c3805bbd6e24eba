"""Voice cloning over real HTTP on the eSpeak engine: upload, speak, list, sample, delete, voice_url."""

import re
import select
import socket
import time

import numpy as np
import pytest

from tests.helpers.audio import decode, encode_audio, median_f0, wav_bytes
from voicegraph.engines.espeak import EspeakEngine

pytestmark = pytest.mark.integration

READING = (
    "This is a recording of my speaking voice. I read a few plain sentences, "
    "slowly and clearly, so that the service can learn how I sound."
)
SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."
RATE = 22050


@pytest.fixture(scope="module")
def references():
    """Real speech at two pitches: eSpeak's deep (~78 Hz) and bright (~250 Hz) presets."""
    engine = EspeakEngine()
    return {voice: engine.synthesize(READING, voice, "en-us", 1.0) for voice in ("deep", "bright")}


def clone(client, name, audio: bytes, filename="reference.wav", **fields):
    data = {"name": name, **{k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()}}
    return client.post("/v1/voices", files={"file": (filename, audio)}, data=data)


def speak_f0(client, voice) -> float:
    response = client.post("/v1/tts", json={"text": SENTENCE, "voice": voice})
    assert response.status_code == 200, response.text
    return median_f0(*decode(response.content))


def test_clones_speak_in_their_reference_voices(client, service, references):
    low = clone(client, "Low Reader", encode_audio(references["deep"], RATE, "wav"))
    high = clone(client, "High Reader", encode_audio(references["bright"], RATE, "mp3"), filename="x.mp3")
    assert low.status_code == 201, low.text
    assert high.status_code == 201, high.text
    profile = low.json()
    assert (profile["id"], profile["name"], profile["kind"]) == ("low_reader", "Low Reader", "cloned")
    assert (profile["engine"], profile["model"], profile["language"]) == ("espeak", "espeak-ng-1.52", "en-us")
    assert profile["method"] == "espeak-parametric"
    # Seconds of speech: the pauses between words do not count.
    clip_s = len(references["deep"]) / RATE
    assert 0.6 * clip_s < profile["reference_duration_s"] <= clip_s
    assert re.fullmatch(r"voice_samples/voice_low_reader_sample_\d{8}_\d{6}(_\d+)?\.wav", profile["sample_path"])
    for key in ("voice_profiles/voice_low_reader.npy", "voice_profiles/voice_low_reader.json", profile["sample_path"]):
        assert (service.storage_root / key).is_file(), key

    reference_f0 = {name: median_f0(pcm, RATE) for name, pcm in references.items()}
    low_f0, high_f0 = speak_f0(client, "low_reader"), speak_f0(client, "high_reader")
    # Each clone speaks near its reference's pitch, and far from the other's.
    assert low_f0 == pytest.approx(reference_f0["deep"], rel=0.2)
    assert high_f0 == pytest.approx(reference_f0["bright"], rel=0.2)
    assert high_f0 > 2 * low_f0


@pytest.mark.parametrize("codec", ["flac", "opus", "m4a"])
def test_other_containers_clone_too(client, references, codec):
    response = clone(client, f"Format {codec}", encode_audio(references["bright"], RATE, codec),
                     filename=f"reference.{codec}")
    assert response.status_code == 201, response.text
    clip_s = len(references["bright"]) / RATE
    assert 0.6 * clip_s < response.json()["reference_duration_s"] <= clip_s
    assert speak_f0(client, f"format_{codec}") > 180


def test_list_get_sample_delete(client, service, references):
    created = clone(client, "Zoë the Narrator", encode_audio(references["bright"], RATE, "wav"),
                    description="bright and clear", language="en-GB")
    assert created.status_code == 201, created.text
    voice_id = created.json()["id"]
    assert voice_id == "zoe_the_narrator" and created.json()["language"] == "en-gb"

    listed = {v["id"]: v for v in client.get("/v1/voices").json()["voices"]}
    assert listed[voice_id]["kind"] == "cloned" and listed[voice_id]["usable"] is True
    assert listed["deep"]["kind"] == "preset"

    got = client.get(f"/v1/voices/{voice_id}").json()
    assert got == created.json()
    assert got["description"] == "bright and clear"

    sample = client.get(f"/v1/voices/{voice_id}/sample")
    assert sample.status_code == 200 and sample.headers["content-type"] == "audio/wav"
    pcm, rate = decode(sample.content)
    assert 1.5 < len(pcm) / rate < 8 and median_f0(pcm, rate) > 180

    deleted = client.delete(f"/v1/voices/{voice_id}")
    assert deleted.status_code == 200 and deleted.json()["id"] == voice_id
    assert client.get(f"/v1/voices/{voice_id}").status_code == 404
    assert client.get(f"/v1/voices/{voice_id}/sample").status_code == 404
    spoken = client.post("/v1/tts", json={"text": "Hi.", "voice": voice_id})
    assert spoken.status_code == 422 and spoken.json()["error"]["code"] == "unknown_voice"
    assert not (service.storage_root / got["sample_path"]).exists()
    assert not list(service.storage_root.glob(f"voice_profiles/voice_{voice_id}.*"))
    assert client.delete(f"/v1/voices/{voice_id}").status_code == 404


def test_a_taken_name_is_a_409_unless_overwrite(client, service, references):
    first = clone(client, "Twice", encode_audio(references["deep"], RATE, "wav"))
    assert first.status_code == 201, first.text
    again = clone(client, "twice!", encode_audio(references["bright"], RATE, "wav"))
    assert again.status_code == 409 and again.json()["error"]["code"] == "voice_exists"
    assert "overwrite" in again.json()["error"]["message"]
    assert speak_f0(client, "twice") < 120  # the first clone is untouched

    replaced = clone(client, "Twice", encode_audio(references["bright"], RATE, "wav"), overwrite=True)
    assert replaced.status_code == 201, replaced.text
    assert speak_f0(client, "twice") > 180  # the cache did not keep the old voice
    assert not (service.storage_root / first.json()["sample_path"]).exists()
    assert (service.storage_root / replaced.json()["sample_path"]).exists()


def wav(pcm) -> bytes:
    return wav_bytes(pcm, RATE)


def bad_uploads(references):
    speech = references["deep"]
    speech_wav = wav(speech)
    quiet = np.random.default_rng(0).normal(0, 10 ** (-75 / 20), RATE * 5).astype(np.float32)
    return {
        "not audio": (b"name,voice\nalice,deep\n" * 50, 422, "invalid_audio"),
        "empty": (b"", 422, "invalid_audio"),
        "corrupt header": (speech_wav[:12] + b"\xff" * 40 + speech_wav[52:4000], 422, "invalid_audio"),
        "too short": (wav(speech[: int(1.5 * RATE)]), 422, "audio_too_short"),
        "silent": (wav(np.zeros(RATE * 5, np.float32)), 422, "silent_audio"),
        "nearly silent": (wav(quiet), 422, "silent_audio"),
    }


@pytest.mark.parametrize("case", ["not audio", "empty", "corrupt header", "too short", "silent", "nearly silent"])
def test_bad_uploads_get_a_4xx(client, references, case):
    audio, status, code = bad_uploads(references)[case]
    response = clone(client, f"bad {case}", audio)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert client.get(f"/v1/voices/bad_{case.replace(' ', '_')}").status_code == 404


@pytest.mark.parametrize(
    "name, status, code",
    [
        ("", 422, "invalid_request"),  # a missing form field
        ("   ", 422, "invalid_voice_name"),
        ("x" * 65, 422, "invalid_voice_name"),
        ("?!...", 422, "invalid_voice_name"),
        ("Deep", 409, "builtin_voice"),
    ],
)
def test_bad_names_get_a_4xx(client, references, name, status, code):
    response = clone(client, name, encode_audio(references["deep"], RATE, "wav"))
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_other_bad_requests(client):
    as_json = client.post("/v1/voices", json={"name": "x"})
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["error"]["message"]
    no_file = client.post("/v1/voices", data={"name": "x"}, files={"other": ("a", b"b")})
    assert no_file.status_code == 422 and "file" in no_file.json()["error"]["message"]
    assert client.get("/v1/voices/nobody").status_code == 404
    assert client.get("/v1/voices/deep/sample").status_code == 404
    deleted = client.delete("/v1/voices/deep")
    assert deleted.status_code == 409 and deleted.json()["error"]["code"] == "builtin_voice"
    bad_language = clone(client, "Lingo", b"RIFF", language="xx-nope")
    assert bad_language.json()["error"]["code"] == "unsupported_language"


def raw_post(service, path: str, headers: dict[str, str], body_chunks) -> tuple[str, int]:
    """POST over a raw socket, sending `body_chunks` only while no answer has come.

    Returns the status line and how many body bytes were handed to the socket.
    """
    host, port = service.url.removeprefix("http://").split(":")
    sent, answer = 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall((head + "\r\n").encode())
        for chunk in body_chunks:
            readable, _, _ = select.select([sock], [], [], 0.002)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        while b"\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    return answer.split(b"\r\n")[0].decode(), sent


def test_an_oversized_upload_is_refused_before_it_is_read(service):
    limit = service.settings.voices.max_upload_bytes
    boundary = "b0undary"
    form = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'.encode()

    # A declared length over the limit: answered after a first piece, the rest never sent.
    status, sent = raw_post(service, "/v1/voices", {**form, "Content-Length": str(10 * limit)}, [head + b"\0" * 65536])
    assert " 413 " in status, status

    # No declared length: counted while it streams in, and refused long before its end.
    total = 20 * limit

    def chunked():
        yield b"%x\r\n%s\r\n" % (len(head), head)
        for _ in range(total // 65536):
            yield b"10000\r\n" + b"\0" * 65536 + b"\r\n"

    status, sent = raw_post(service, "/v1/voices", {**form, "Transfer-Encoding": "chunked"}, chunked())
    assert " 413 " in status, status
    assert sent < total / 2  # the rest was never read (socket buffers hold a few MB)


def test_voice_url_is_cloned_once_then_served_from_cache(client, reference_server, references):
    url = reference_server.publish("/voices/deep.wav", wav(references["deep"]), '"deep-v1"')
    before = reference_server.full_downloads

    started = time.perf_counter()
    first = client.post("/v1/tts", json={"text": SENTENCE, "voice_url": url})
    first_s = time.perf_counter() - started
    assert first.status_code == 200, first.text
    assert first.headers["x-voice-cache"] == "miss"
    assert reference_server.full_downloads == before + 1

    not_modified = reference_server.not_modified
    started = time.perf_counter()
    second = client.post("/v1/tts", json={"text": SENTENCE, "voice_url": url})
    second_s = time.perf_counter() - started
    assert second.status_code == 200, second.text
    assert second.headers["x-voice-cache"] == "hit"
    assert reference_server.full_downloads == before + 1  # revalidated, not downloaded
    assert reference_server.not_modified == not_modified + 1
    print(f"\nvoice_url first request {first_s:.3f} s (download + clone), second {second_s:.3f} s (cached)")

    f0 = median_f0(*decode(second.content))
    assert f0 == pytest.approx(median_f0(references["deep"], RATE), rel=0.2)

    # The file behind the URL changes: a new ETag, downloaded and cloned again.
    reference_server.publish("/voices/deep.wav", wav(references["bright"]), '"deep-v2"')
    third = client.post("/v1/tts", json={"text": SENTENCE, "voice_url": url})
    assert third.headers["x-voice-cache"] == "miss"
    assert median_f0(*decode(third.content)) > 180


@pytest.mark.parametrize(
    "url, code",
    [
        ("file:///etc/passwd", "url_refused"),
        ("ftp://example.com/ref.wav", "url_refused"),
        ("http://169.254.169.254/latest/meta-data/", "url_refused"),
        ("http://10.0.0.7/ref.wav", "url_refused"),
        ("http://[::1]/ref.wav", "url_refused"),
        ("not a url", "url_refused"),
    ],
)
def test_refused_voice_urls(client, url, code):
    response = client.post("/v1/tts", json={"text": "Hi.", "voice_url": url})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_loopback_outside_the_allow_list_is_refused(client, reference_server, references):
    url = reference_server.publish("/voices/any.wav", wav(references["deep"]), '"any"')
    # The allow list names one address and port; the next port is still refused.
    other_port = url.replace(f":{reference_server.port}", f":{reference_server.port + 1}")
    response = client.post("/v1/tts", json={"text": "Hi.", "voice_url": other_port})
    assert response.status_code == 422 and response.json()["error"]["code"] == "url_refused"


def test_unreachable_and_conflicting_voice_urls(client, reference_server):
    missing = client.post("/v1/tts", json={"text": "Hi.", "voice_url": reference_server.url + "/nothing.wav"})
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "url_unreachable"
    assert "404" in missing.json()["error"]["message"]
    not_audio = reference_server.publish("/voices/text.wav", b"just text " * 100, '"t"')
    response = client.post("/v1/tts", json={"text": "Hi.", "voice_url": not_audio})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_audio"
    both = client.post("/v1/tts", json={"text": "Hi.", "voice": "deep", "voice_url": not_audio})
    assert both.status_code == 422 and "not both" in both.json()["error"]["message"]


@pytest.mark.parametrize(
    "voice_id, status, code",
    [
        # Refused before any lookup: no voice id looks like these.
        ("a%00b", 422, "invalid_request"),
        ("x" * 300, 422, "invalid_request"),
        ("a/b/c", 422, "invalid_request"),  # one slash at most: `engine/voice`
        # A voice id's shape, but no clone's (clones' ids are lower-case slugs): never looked up in storage.
        # (A preset's may hold spaces, as XTTS speakers' names do.)
        ("Not_A_Slug", 404, "not_found"),
        ("Not%20A%20Slug", 404, "not_found"),
    ],
)
@pytest.mark.parametrize("suffix, method", [("", "GET"), ("/sample", "GET"), ("", "DELETE")])
def test_ids_no_voice_can_have_never_reach_storage(client, voice_id, status, code, suffix, method):
    response = client.request(method, f"/v1/voices/{voice_id}{suffix}")
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
