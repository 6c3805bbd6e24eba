"""Where the try-it page is served and what with; the page itself runs in a browser in tests/ui."""

import re

import pytest
from fastapi.testclient import TestClient

from serve_app.access import AccessControl
from serve_app.http_app import build_http_app
from serve_app.jobs.serving import JobsServing
from serve_app.tts.serving import TTSServing
from serve_app.voices.serving import VoicesServing
from voicegraph.access.keys import hash_key
from voicegraph.core.settings import Settings


def http(**auth) -> TestClient:
    """The ingress's FastAPI app with no graph behind it: enough for routes that never reach one."""
    if auth:
        auth = {"enabled": True, "keys": [{"name": "app", "sha256": hash_key("vg_unit-key")}], **auth}
    settings = Settings(auth=auth)
    tts = TTSServing(settings, None, None, None, None, None)
    access = AccessControl(settings.auth, limiter=None) if settings.auth.enabled else None
    app = build_http_app(tts, VoicesServing(tts, None, None), JobsServing(tts, None, "unit"), access)
    return TestClient(app, base_url="http://voicegraph.test/prefix", root_path="/prefix")


def test_the_page_and_every_file_it_names_are_served():
    client = http()
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    names = re.findall(r'(?:src|href)="([^":]+)"', page.text)
    assert sorted(names) == ["app.js", "style.css"], "relative names, so the page works under any prefix"
    types = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
    for name in names:
        answer = client.get(f"/ui/{name}")
        assert (answer.status_code, answer.headers["content-type"]) == (200, types[name])


@pytest.mark.parametrize("path", ["/", "/ui"])
def test_bare_paths_lead_to_the_page_relative_to_where_they_were_asked(path):
    answer = http().get(path, follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (307, "ui/")


def test_a_file_the_page_does_not_have_is_a_404_in_the_error_shape():
    error = http().get("/ui/secrets.py").json()["error"]
    assert error["code"] == "not_found" and "secrets.py" in error["message"]


def test_the_page_is_public_where_the_docs_are_and_absent_where_they_are_not():
    keyed = http(public_docs=True)
    assert keyed.get("/ui/").status_code == 200
    assert keyed.get("/v1/voices").status_code == 401
    assert http(public_docs=False).get("/ui/").status_code == 404

