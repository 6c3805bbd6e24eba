"""Bad input of every kind gets a 4xx with a code and a message a person can
act on. BAD_INPUT is also the table "Bad input" of docs/api/native.md: a test keeps
the two the same, so the docs never promise an answer that is not tested."""

import json
import re
from pathlib import Path
from typing import NamedTuple

import pytest

pytestmark = pytest.mark.integration

API_DOCS = Path(__file__).resolve().parents[2] / "docs" / "api" / "native.md"
JSON = {"content-type": "application/json"}
UNKNOWN_JOB, UNKNOWN_RUN = "job_" + "0" * 32, "run_" + "0" * 32


class Case(NamedTuple):
    input: str  # as the docs' table says it
    method: str
    path: str
    body: object  # JSON-able; raw bytes; (content, content type); {"files": …} for multipart
    status: int
    code: str
    hint: str  # part of the message


def form(name="My Voice", file=b"name,voice\nalice,deep\n" * 50, **fields):
    return {"data": {"name": name, **fields}, "files": {"file": ("reference.wav", file)}}


BAD_INPUT = [
    Case("Empty text", "POST", "/v1/tts", {"text": ""}, 422, "empty_text", "empty"),
    Case("Only whitespace", "POST", "/v1/tts", {"text": " \n\t "}, 422, "empty_text", "empty"),
    Case("Text over `max_text_chars` (13,000)", "POST", "/v1/tts", {"text": "x " * 6501}, 422, "text_too_long", "limit is 13000"),
    Case("A lone surrogate (`\\udcff`) in the text", "POST", "/v1/tts", b'{"text": "Hi \\udcff"}', 422, "invalid_text", "lone surrogate"),
    Case("Unknown voice", "POST", "/v1/tts", {"text": "hi", "voice": "nobody"}, 422, "unknown_voice", "GET /v1/voices"),
    Case("A voice id with a NUL byte", "POST", "/v1/tts", {"text": "hi", "voice": "a\x00b"}, 422, "unknown_voice", "does not exist"),
    Case("A 5,000-character voice id", "POST", "/v1/tts", {"text": "hi", "voice": "x" * 5000}, 422, "unknown_voice", "does not exist"),
    Case("Unknown language", "POST", "/v1/tts", {"text": "hi", "language": "en-uss"}, 422, "unsupported_language", "Did you mean en-us"),
    Case("Unknown format", "POST", "/v1/tts", {"text": "hi", "format": "m4a"}, 422, "unsupported_format", "wav, mp3, opus, aac, flac, pcm"),
    Case("Speed out of range", "POST", "/v1/tts", {"text": "hi", "speed": 3}, 422, "speed_out_of_range", "0.5 to 2.0"),
    Case("Speed of 0", "POST", "/v1/tts", {"text": "hi", "speed": 0}, 422, "speed_out_of_range", "0.5 to 2.0"),
    Case("A field of the wrong type", "POST", "/v1/tts", {"text": "hi", "speed": "fast"}, 422, "invalid_request", "speed"),
    Case("A missing field", "POST", "/v1/tts", {"voice": "deep"}, 422, "invalid_request", "text: Field required"),
    Case("A misspelt field", "POST", "/v1/tts", {"text": "hi", "voise": "deep"}, 422, "invalid_request", "voise"),
    Case("Broken JSON", "POST", "/v1/tts", b'{"text": "hi",', 400, "malformed_json", "not valid JSON"),
    Case("A body that is not UTF-8", "POST", "/v1/tts", b'\xff\xfe{"text"', 400, "malformed_body", "UTF-8"),
    Case("JSON that is not an object", "POST", "/v1/tts", b"[1, 2]", 422, "invalid_request", "valid dictionary"),
    Case("A form instead of JSON", "POST", "/v1/tts", ("text=hi", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", "application/json"),
    Case("A body over `max_request_bytes` (1 MB)", "POST", "/v1/tts", {"text": "x" * 1_100_000}, 413, "payload_too_large", "larger than"),
    Case("OpenAI API: empty input", "POST", "/v1/audio/speech", {"model": "tts-1", "voice": "default", "input": ""}, 400, "empty_text", "empty"),
    Case("OpenAI API: a body that is not UTF-8", "POST", "/v1/audio/speech", b"\xff\x01\x02", 400, "malformed_body", "could not be read"),
    Case("Upload that is not audio", "POST", "/v1/voices", form(), 422, "invalid_audio", "audio"),
    Case("Upload without a file", "POST", "/v1/voices", {"files": {"name": (None, "x")}}, 422, "invalid_request", "file"),
    Case("Clone named like a built-in voice", "POST", "/v1/voices", form(name="Deep"), 409, "builtin_voice", "built-in"),
    Case("A voice id that no voice can have", "GET", "/v1/voices/a/b/c", None, 422, "invalid_request", "voice_id"),
    Case("A voice id over 128 characters", "GET", "/v1/voices/" + "x" * 300, None, 422, "invalid_request", "voice_id"),
    Case("A voice id that does not exist", "GET", "/v1/voices/nobody", None, 404, "not_found", "GET /v1/voices"),
    Case("Deleting a built-in voice", "DELETE", "/v1/voices/deep", None, 409, "builtin_voice", "built-in"),
    Case("A job id that is not one", "GET", "/v1/tts/jobs/job_doesnotexist", None, 422, "invalid_request", "job_id"),
    Case("A job id that does not exist", "GET", f"/v1/tts/jobs/{UNKNOWN_JOB}", None, 404, "not_found", "does not exist"),
    Case("Cancelling a job id that is not one", "POST", "/v1/tts/jobs/nope/cancel", None, 422, "invalid_request", "job_id"),
    Case("Audio of a job that does not exist", "GET", f"/v1/tts/jobs/{UNKNOWN_JOB}/audio", None, 404, "not_found", "does not exist"),
    Case("A callback URL on a private address", "POST", "/v1/tts/jobs", {"text": "hi", "callback_url": "http://10.0.0.1/cb"}, 422, "url_refused", "10.0.0.1"),
    Case("Serverless API: both text and sections", "POST", "/run", {"input": {"text": "a", "sections": [{"id": "x", "text": "b"}]}}, 422, "invalid_request", "exactly one"),
    Case("Serverless API: a run id that is not one", "GET", "/status/abc", None, 422, "invalid_request", "run_id"),
    Case("Serverless API: a run id that does not exist", "GET", f"/status/{UNKNOWN_RUN}", None, 404, "not_found", "does not exist"),
    Case("An unknown route", "GET", "/v1/nothing", None, 404, "not_found", "no such route"),
    Case("A method a route does not take", "GET", "/v1/tts", None, 405, "method_not_allowed", "not allowed"),
]


def send(client, case: Case):
    if isinstance(case.body, dict) and "files" in case.body:
        return client.request(case.method, case.path, **case.body)
    if isinstance(case.body, tuple):
        content, content_type = case.body
        return client.request(case.method, case.path, content=content, headers={"content-type": content_type})
    if case.body is None:
        return client.request(case.method, case.path)
    content = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    return client.request(case.method, case.path, content=content, headers=JSON)


@pytest.mark.parametrize("case", BAD_INPUT, ids=[case.input for case in BAD_INPUT])
def test_bad_input_gets_a_clear_4xx(client, case):
    response = send(client, case)
    assert response.status_code == case.status, response.text
    error = response.json()["error"]
    assert error["code"] == case.code
    assert case.hint in error["message"], error["message"]
    if case.path.startswith("/v1/audio/"):
        assert error["type"] == "invalid_request_error"  # OpenAI's shape
    else:
        assert error["request_id"] == response.headers["x-request-id"]


def docs_rows() -> set[tuple[str, int, str]]:
    section = API_DOCS.read_text().split("\n## Bad input\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (\d{3}) \| `(\w+)` \|$", section, re.M)
    return {(what, int(status), code) for what, status, code in rows}


def test_the_docs_table_is_this_table():
    assert docs_rows() == {(case.input, case.status, case.code) for case in BAD_INPUT}
