"""voicegraph.net.safe_fetch against a real local HTTP(S) server: no mocked httpx.

Host names are resolved by an injected resolver so no test depends on DNS;
IP literals still go through the real getaddrinfo (numeric only).
"""

from __future__ import annotations

import ipaddress
import queue
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.helpers.ports import free_port
from voicegraph.core.errors import PayloadTooLargeError, UrlRefusedError, UrlUnreachableError
from voicegraph.net.safe_fetch import AllowList, PostResult, check_url, fetch, post

BODY = b"RIFF fake reference audio"
ETAG = '"v1"'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
HUGE = 50 * 2**20  # what the large endpoints would send if nobody hung up
CAP = 100_000


def resolver(table: dict[str, list[str]]):
    """getaddrinfo for the names in `table`; IP literals resolve numerically."""

    def resolve(host, port, *args, **kwargs):
        resolve.calls.append(host)
        if host not in table:
            return socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port),
            )
            for address in table[host]
        ]

    resolve.calls = []
    return resolve


NO_NAMES = resolver({})


class State:
    def __init__(self):
        self.full_bodies = 0
        self.hosts: list[str] = []
        self.posted: list[bytes] = []
        self.written: queue.Queue[int] = queue.Queue()  # bytes sent before the client hung up
        self.release = threading.Event()  # lets stalled handlers end at teardown


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: a response without Content-Length ends when the server closes.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    @property
    def state(self) -> State:
        return self.server.state

    def do_GET(self):
        self.state.hosts.append(self.headers["Host"])
        path = urlsplit(self.path).path
        route = {
            "/audio": self.audio,
            "/host": self.echo_host,
            "/empty": lambda: self.reply(200, b""),
            "/redirect/audio": lambda: self.redirect("/audio"),
            "/redirect/metadata": lambda: self.redirect("http://169.254.169.254/latest/meta-data/"),
            "/loop": lambda: self.redirect("/loop"),
            "/large/declared": self.declare_large,
            "/large/undeclared": self.drip_large,
            "/slow": self.slow,
            "/slow-drip": self.slow_drip,
        }.get(path)
        if route is not None:
            route()
        elif path.startswith("/status/"):
            self.reply(int(path.removeprefix("/status/")), b"")
        else:
            self.reply(404, b"not found")

    def do_POST(self):
        # Same routes as GET; the body is kept to check what arrived.
        self.state.posted.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.do_GET()

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def audio(self):
        validators = [("ETag", ETAG), ("Last-Modified", LAST_MODIFIED)]
        if (
            self.headers["If-None-Match"] == ETAG
            or self.headers["If-Modified-Since"] == LAST_MODIFIED
        ):
            self.send_response(304)
            for name, value in validators:
                self.send_header(name, value)
            self.end_headers()
            return
        self.state.full_bodies += 1
        self.reply(200, BODY, [*validators, ("Content-Type", "audio/wav")])

    def echo_host(self):
        self.reply(200, self.headers["Host"].encode())

    def redirect(self, location):
        self.reply(302, b"", [("Location", location)])

    def declare_large(self):
        # Headers only: a client that reads before refusing waits for the timeout.
        self.send_response(200)
        self.send_header("Content-Length", str(HUGE))
        self.end_headers()
        self.state.release.wait(5)

    def drip_large(self):
        self.send_response(200)
        self.end_headers()
        chunk, written = b"\0" * 65536, 0
        try:
            while written < HUGE:
                self.wfile.write(chunk)
                written += len(chunk)
                time.sleep(0.002)
        except OSError:
            pass
        finally:
            self.state.written.put(written)

    def slow(self):
        self.state.release.wait(5)
        try:
            self.reply(200, BODY)
        except OSError:
            pass  # the client gave up long ago: a traceback here would only be noise

    def slow_drip(self):
        # Each byte comes well inside the read timeout; only a deadline stops it.
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(100):
                if self.state.release.wait(0.1):
                    return
                self.wfile.write(b"x")
        except OSError:
            pass


@contextmanager
def serve(tls: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def server():
    with serve() as running:
        yield running


def get(url, *allow, **kwargs):
    options = {"max_bytes": CAP, "timeout_s": 2.0, "max_redirects": 3, "resolve": NO_NAMES}
    return fetch(url, allow=AllowList.parse(list(allow)), **{**options, **kwargs})


# --- check_url: what is refused ---------------------------------------------

NAMES = resolver(
    {
        "localhost": ["127.0.0.1", "::1"],
        "voice.example": ["93.184.216.34"],
        "mixed.example": ["93.184.216.34", "10.0.0.5"],
        "mixed-reversed.example": ["10.0.0.5", "93.184.216.34"],
    }
)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://voice.example/a.wav", "only http and https"),
        ("gopher://voice.example/", "only http and https"),
        ("voice.example/a.wav", "only http and https"),
        ("http:///a.wav", "no host"),
        ("http://127.0.0.1:8080/", "loopback"),
        ("http://localhost:8080/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://100.100.100.200/latest/meta-data/", "shared"),
        ("http://100.64.0.1/", "shared"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://[::1]/", "loopback"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://mixed.example/a.wav", "private"),
        ("http://mixed-reversed.example/a.wav", "private"),
    ],
)
def test_refused(url, reason):
    with pytest.raises(UrlRefusedError) as caught:
        check_url(url, AllowList(), NAMES)
    assert reason in caught.value.message
    assert caught.value.code == "url_refused"
    assert caught.value.status_code == 422


def test_refused_userinfo_never_echoes_the_password():
    with pytest.raises(UrlRefusedError) as caught:
        check_url("http://user:s3cret@voice.example/a.wav", AllowList(), NAMES)
    assert "password" in caught.value.message
    assert "s3cret" not in caught.value.message
    assert NAMES.calls.count("voice.example") == 0  # refused before resolving


def test_refusal_message_leaves_out_the_query_string():
    with pytest.raises(UrlRefusedError) as caught:
        check_url("http://localhost/a.wav?X-Amz-Signature=abc123", AllowList(), NAMES)
    assert "http://localhost/a.wav" in caught.value.message
    assert "abc123" not in caught.value.message


@pytest.mark.parametrize(
    ("url", "port", "address"),
    [
        ("https://voice.example/a.wav", 443, "93.184.216.34"),
        ("http://voice.example/a.wav", 80, "93.184.216.34"),
        ("http://voice.example:8080/a.wav", 8080, "93.184.216.34"),
        ("https://[2606:4700:4700::1111]/", 443, "2606:4700:4700::1111"),
    ],
)
def test_public_addresses_pass(url, port, address):
    resolved = check_url(url, AllowList(), NAMES)
    assert (resolved.port, resolved.address) == (port, ipaddress.ip_address(address))
    assert resolved.scheme == url.split(":")[0]


def test_allowed_internal_address_passes():
    resolved = check_url("http://localhost:8080/", AllowList.parse(["127.0.0.1", "::1"]), NAMES)
    assert resolved.host == "localhost"
    assert resolved.address == ipaddress.ip_address("127.0.0.1")


def test_dns_failure_is_unreachable():
    with pytest.raises(UrlUnreachableError) as caught:
        check_url("http://no-such-host.invalid/a.wav", AllowList(), NAMES)
    assert "no-such-host.invalid" in caught.value.message
    assert caught.value.code == "url_unreachable"
    assert caught.value.status_code == 422


# --- AllowList ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "address", "port", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1", 1234, True),
        ("127.0.0.1", "127.0.0.2", 1234, False),
        ("127.0.0.1:8080", "127.0.0.1", 8080, True),
        ("127.0.0.1:8080", "127.0.0.1", 8081, False),
        ("127.0.0.1", "::ffff:127.0.0.1", 80, True),
        ("10.0.0.0/8", "10.200.3.4", 80, True),
        ("10.0.0.0/8", "11.0.0.1", 80, False),
        ("10.0.0.0/8:443", "10.1.1.1", 443, True),
        ("10.0.0.0/8:443", "10.1.1.1", 80, False),
        ("::1", "::1", 80, True),
        ("::1", "127.0.0.1", 80, False),
        ("[::1]:9000", "::1", 9000, True),
        ("[::1]:9000", "::1", 9001, False),
        ("[::1]", "::1", 9001, True),
        ("fd00::/8", "fd00:ec2::254", 80, True),
        ("[fd00::/8]:443", "fd12::1", 443, True),
        ("[fd00::/8]:443", "fd12::1", 80, False),
        ("0.0.0.0/0", "::1", 80, False),
    ],
)
def test_allow_list(entry, address, port, allowed):
    assert AllowList.parse([entry]).allows(ipaddress.ip_address(address), port) is allowed


@pytest.mark.parametrize(
    "entry",
    [
        "not-an-ip",
        "10.0.0.0/33",
        "10.0.0.1/8",
        "[::1]:notaport",
        "[::1]:",
        "[::1",
        "[::1]9000",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:http",
        "",
    ],
)
def test_allow_list_rejects_garbage(entry):
    with pytest.raises(ValueError, match="outbound allow entry"):
        AllowList.parse(["127.0.0.1", entry])


# --- fetch against the local server -------------------------------------------


def test_fetch_returns_body_and_validators(server):
    port = server.server_port
    got = get(f"http://127.0.0.1:{port}/audio", f"127.0.0.1:{port}")
    assert got.status == 200
    assert got.content == BODY
    assert (got.etag, got.last_modified) == (ETAG, LAST_MODIFIED)
    assert got.content_type == "audio/wav"
    assert got.final_url == f"http://127.0.0.1:{port}/audio"


@pytest.mark.parametrize(
    ("entry", "allowed"),
    [
        ("127.0.0.1:{port}", True),
        ("127.0.0.0/8", True),
        ("127.0.0.0/8:{port}", True),
        ("127.0.0.1:{other}", False),
        ("10.0.0.0/8", False),
    ],
)
def test_fetch_follows_the_allow_list(server, entry, allowed):
    port = server.server_port
    other = port + 1 if port < 65535 else port - 1
    url = f"http://127.0.0.1:{port}/audio"
    if allowed:
        assert get(url, entry.format(port=port, other=other)).content == BODY
    else:
        with pytest.raises(UrlRefusedError, match="loopback"):
            get(url, entry.format(port=port, other=other))
        assert server.state.hosts == []  # refused before connecting


def test_fetch_connects_to_the_checked_address_with_the_original_host(server):
    # voice.test exists only in the injected resolver: the request can only have
    # arrived because fetch connected to the address it checked.
    port = server.server_port
    resolve = resolver({"voice.test": ["127.0.0.1"]})
    got = get(f"http://voice.test:{port}/host", f"127.0.0.1:{port}", resolve=resolve)
    assert got.content == f"voice.test:{port}".encode()
    assert resolve.calls == ["voice.test"]
    assert got.final_url == f"http://voice.test:{port}/host"


def test_proxy_settings_in_the_environment_are_ignored(server, monkeypatch):
    # A proxy would connect wherever it likes; this one is not even listening.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    port = server.server_port
    assert get(f"http://127.0.0.1:{port}/audio", f"127.0.0.1:{port}").content == BODY


@pytest.mark.parametrize(
    "validators",
    [{"etag": ETAG}, {"last_modified": LAST_MODIFIED}, {"etag": ETAG, "last_modified": LAST_MODIFIED}],
)
def test_conditional_fetch_is_not_downloaded_again(server, validators):
    port = server.server_port
    url, allow = f"http://127.0.0.1:{port}/audio", f"127.0.0.1:{port}"
    first = get(url, allow)
    again = get(url, allow, **{name: getattr(first, name) for name in validators})
    assert again.status == 304
    assert again.content == b""
    assert (again.etag, again.last_modified) == (ETAG, LAST_MODIFIED)
    assert server.state.full_bodies == 1


def test_stale_etag_downloads_again(server):
    port = server.server_port
    got = get(f"http://127.0.0.1:{port}/audio", f"127.0.0.1:{port}", etag='"v0"')
    assert (got.status, got.content) == (200, BODY)
    assert server.state.full_bodies == 1


def test_redirect_is_followed(server):
    port = server.server_port
    got = get(f"http://127.0.0.1:{port}/redirect/audio", f"127.0.0.1:{port}")
    assert got.content == BODY
    assert got.final_url == f"http://127.0.0.1:{port}/audio"


@pytest.mark.parametrize(
    ("path", "max_redirects", "error", "words"),
    [
        ("/redirect/metadata", 3, UrlRefusedError, "169.254.169.254"),
        ("/loop", 3, UrlUnreachableError, "more than 3 times"),
        ("/redirect/audio", 0, UrlUnreachableError, "more than 0 times"),
    ],
)
def test_redirect_refused(server, path, max_redirects, error, words):
    port = server.server_port
    with pytest.raises(error, match=words):
        get(f"http://127.0.0.1:{port}{path}", f"127.0.0.1:{port}", max_redirects=max_redirects)
    if path == "/loop":
        assert len(server.state.hosts) == max_redirects + 1


def test_declared_length_over_the_cap_is_refused_before_reading(server):
    port = server.server_port
    started = time.monotonic()
    with pytest.raises(PayloadTooLargeError) as caught:
        get(f"http://127.0.0.1:{port}/large/declared", f"127.0.0.1:{port}", timeout_s=2)
    assert f"{CAP} bytes" in caught.value.message
    assert (caught.value.code, caught.value.status_code) == ("payload_too_large", 413)
    assert time.monotonic() - started < 1


def test_size_cap_applies_while_streaming(server):
    port = server.server_port
    with pytest.raises(PayloadTooLargeError) as caught:
        get(f"http://127.0.0.1:{port}/large/undeclared", f"127.0.0.1:{port}")
    assert f"{CAP} bytes" in caught.value.message
    written = server.state.written.get(timeout=10)
    assert written < HUGE // 10, f"server sent {written} bytes before the client hung up"


def test_body_at_the_cap_is_accepted(server):
    port = server.server_port
    got = get(f"http://127.0.0.1:{port}/audio", f"127.0.0.1:{port}", max_bytes=len(BODY))
    assert got.content == BODY
    with pytest.raises(PayloadTooLargeError):
        get(f"http://127.0.0.1:{port}/audio", f"127.0.0.1:{port}", max_bytes=len(BODY) - 1)


def test_empty_body_is_returned(server):
    port = server.server_port
    got = get(f"http://127.0.0.1:{port}/empty", f"127.0.0.1:{port}")
    assert (got.status, got.content) == (200, b"")


@pytest.mark.parametrize("status", [302, 304, 404, 500])
def test_http_error_status_is_unreachable(server, status):
    port = server.server_port
    with pytest.raises(UrlUnreachableError, match=f"returned HTTP {status}") as caught:
        get(f"http://127.0.0.1:{port}/status/{status}?token=abc123", f"127.0.0.1:{port}")
    assert caught.value.code == "url_unreachable"
    assert "abc123" not in caught.value.message


def test_connection_refused_is_unreachable():
    port = free_port()
    with pytest.raises(UrlUnreachableError, match="could not fetch") as caught:
        get(f"http://127.0.0.1:{port}/a.wav", "127.0.0.1")
    assert f"127.0.0.1:{port}" in caught.value.message


def test_slow_response_times_out(server):
    port = server.server_port
    started = time.monotonic()
    with pytest.raises(UrlUnreachableError, match="did not respond within 0.5 s"):
        get(f"http://127.0.0.1:{port}/slow", f"127.0.0.1:{port}", timeout_s=0.5)
    assert time.monotonic() - started < 2


def test_slow_drip_hits_the_overall_deadline(server):
    port = server.server_port
    started = time.monotonic()
    with pytest.raises(UrlUnreachableError, match="took longer than"):
        get(f"http://127.0.0.1:{port}/slow-drip", f"127.0.0.1:{port}", timeout_s=0.3)
    assert time.monotonic() - started < 3


# --- post: webhooks --------------------------------------------------------

PAYLOAD = b'{"job_id": "j1"}'


def send(url, *allow, **kwargs):
    options = {"body": PAYLOAD, "headers": {}, "timeout_s": 2.0, "resolve": NO_NAMES}
    return post(url, allow=AllowList.parse(list(allow)), **{**options, **kwargs})


@pytest.mark.parametrize("status", [200, 204, 404, 500, 503])
def test_post_returns_the_status(server, status):
    port = server.server_port
    got = send(f"http://127.0.0.1:{port}/status/{status}", f"127.0.0.1:{port}")
    assert got == PostResult(status)
    assert server.state.posted == [PAYLOAD]


def test_post_does_not_follow_redirects(server):
    port = server.server_port
    assert send(f"http://127.0.0.1:{port}/redirect/audio", f"127.0.0.1:{port}").status == 302
    assert server.state.hosts == [f"127.0.0.1:{port}"]  # nothing went to /audio


def test_post_connects_to_the_checked_address_with_the_original_host(server):
    port = server.server_port
    resolve = resolver({"hooks.test": ["127.0.0.1"]})
    got = send(f"http://hooks.test:{port}/host", f"127.0.0.1:{port}", resolve=resolve)
    assert got.status == 200
    assert server.state.hosts == [f"hooks.test:{port}"]
    assert server.state.posted == [PAYLOAD]


def test_post_refused_address_is_not_contacted(server):
    with pytest.raises(UrlRefusedError, match="loopback"):
        send(f"http://127.0.0.1:{server.server_port}/host")
    assert server.state.hosts == []


def test_post_to_a_closed_port_is_unreachable():
    port = free_port()
    with pytest.raises(UrlUnreachableError, match="could not POST to") as caught:
        send(f"http://127.0.0.1:{port}/hook?token=abc123", "127.0.0.1")
    assert f"127.0.0.1:{port}/hook" in caught.value.message
    assert "abc123" not in caught.value.message


def test_post_reads_only_a_capped_part_of_the_answer(server):
    port = server.server_port
    started = time.monotonic()
    assert send(f"http://127.0.0.1:{port}/large/undeclared", f"127.0.0.1:{port}").status == 200
    assert time.monotonic() - started < 1
    written = server.state.written.get(timeout=10)
    assert written < HUGE // 10, f"server sent {written} bytes before the client hung up"


def test_post_slow_answer_times_out(server):
    with pytest.raises(UrlUnreachableError, match="did not respond within 0.3 s"):
        send(f"http://127.0.0.1:{server.server_port}/slow", "127.0.0.1", timeout_s=0.3)


# --- TLS: SNI and certificate checks use the host name, not the IP ----------


def make_certificates(tmp_path, hostname):
    """A throwaway CA (PEM path) and a server context with a leaf for `hostname`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(timezone.utc)

    def certificate(subject, key, issuer, issuer_key, extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "safe_fetch test CA")])
    ca = certificate(
        ca_name,
        ca_key,
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.KeyUsage(True, False, False, False, False, True, True, False, False), True),
            (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
        ],
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]),
        leaf_key,
        ca_name,
        ca_key,
        [
            (x509.SubjectAlternativeName([x509.DNSName(hostname)]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
        ],
    )
    ca_path, cert_path, key_path = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return ca_path, context


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    ca_path, context = make_certificates(tmp_path, "voice.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server_names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: server_names.append(name)
    with serve(tls=context) as running:
        yield running, server_names


def test_https_sends_sni_and_verifies_the_host_name(tls_server):
    server, server_names = tls_server
    port = server.server_port
    resolve = resolver({"voice.test": ["127.0.0.1"]})
    got = get(f"https://voice.test:{port}/audio", f"127.0.0.1:{port}", resolve=resolve)
    assert got.content == BODY
    assert server_names == ["voice.test"]
    assert server.state.hosts == [f"voice.test:{port}"]


def test_https_certificate_for_another_name_is_unreachable(tls_server):
    server, server_names = tls_server
    port = server.server_port
    resolve = resolver({"other.test": ["127.0.0.1"]})
    with pytest.raises(UrlUnreachableError, match="(?i)certificate"):
        get(f"https://other.test:{port}/audio", f"127.0.0.1:{port}", resolve=resolve)
    assert server_names == ["other.test"]
    assert server.state.hosts == []


def test_https_post_sends_sni_and_verifies_the_host_name(tls_server):
    server, server_names = tls_server
    port = server.server_port
    resolve = resolver({"voice.test": ["127.0.0.1"]})
    got = send(f"https://voice.test:{port}/host", f"127.0.0.1:{port}", resolve=resolve)
    assert got.status == 200
    assert server_names == ["voice.test"]
    assert server.state.posted == [PAYLOAD]
