"""HTTP(S) GET and POST for URLs that users hand us (voice_url, callbacks), safe from SSRF.

A user-supplied URL must not become a way to reach what only the service can
reach: loopback, the private network, cloud metadata endpoints. So every
address the host resolves to is checked, the connection goes to the address
that was checked (a second, different DNS answer cannot redirect it: DNS
rebinding), every redirect is checked again, and the body is capped while it
streams rather than after it has been buffered.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

import httpx

from voicegraph.core.allow_list import AllowList, IPAddress, unmap
from voicegraph.core.errors import PayloadTooLargeError, UrlRefusedError, UrlUnreachableError

Resolver = Callable[..., list[tuple]]

_DEFAULT_PORTS = {"http": 80, "https": 443}

# RFC 6598 shared address space (carrier-grade NAT; Alibaba Cloud's metadata
# service is 100.100.100.200). Python's is_private does not include it.
_SHARED_ADDRESS_SPACE = IPv4Network("100.64.0.0/10")

# Checked in this order so that the message names the most specific reason
# (127.0.0.1 is also "private" to Python, but "loopback" is what helps).
_REFUSED_KINDS = (
    ("is_loopback", "loopback"),
    ("is_unspecified", "unspecified"),
    ("is_link_local", "link-local (cloud metadata)"),
    ("is_multicast", "multicast"),
    ("is_private", "private"),
    ("is_reserved", "reserved"),
)

# httpx's timeouts bound each connect and each read, so a server sending one
# byte just inside the read timeout would never time out. The whole download
# gets this many times timeout_s.
_DEADLINE_FACTOR = 3

# What a POST reads of the answer before hanging up. Only the status matters,
# but reading a little lets a receiver finish writing instead of seeing a
# reset; the cap stops one from streaming at us forever.
_POST_ANSWER_CAP = 64 * 1024


def _refusal(address: IPAddress) -> str | None:
    """What kind of internal address this is, or None when it is public."""
    address = unmap(address)
    for attribute, kind in _REFUSED_KINDS:
        if getattr(address, attribute):
            return kind
    if isinstance(address, IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "shared (carrier-grade NAT, cloud metadata)"
    return None


@dataclass(frozen=True)
class ResolvedUrl:
    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress  # connect here, not to whatever the host resolves to later


@dataclass(frozen=True)
class PostResult:
    status: int  # any HTTP status, 3xx included: post follows no redirect


@dataclass(frozen=True)
class FetchedResource:
    status: int  # 2xx, or 304 when a conditional request was not modified
    content: bytes  # b"" on 304
    etag: str | None
    last_modified: str | None
    content_type: str | None
    final_url: str


def _display(url: httpx.URL | str) -> str:
    # Messages reach logs and clients: leave out the query string, which often
    # carries a signature (pre-signed URLs). Userinfo is refused before any
    # message shows a URL.
    return str(httpx.URL(url).copy_with(query=None, fragment=None))


def check_url(url: str, allow: AllowList, resolve: Resolver = socket.getaddrinfo) -> ResolvedUrl:
    """The address to connect to for `url`, or UrlRefusedError.

    Every address the host resolves to must be public or allowed: which one a
    client would end up using is not ours to predict.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UrlRefusedError(f"not a valid URL: {exc}") from None
    if parsed.userinfo:
        raise UrlRefusedError(
            "URLs with a user name or password are refused; use a link that needs no login "
            "(for example a pre-signed URL)"
        )
    if parsed.scheme not in _DEFAULT_PORTS:
        raise UrlRefusedError(
            f"only http and https URLs can be fetched, not scheme {parsed.scheme or '(none)'!r}"
        )
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UrlRefusedError(f"{_display(parsed)} has no host name")
    port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UrlUnreachableError(f"could not resolve host {host!r}: {exc}") from None

    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        kind = None if allow.allows(address, port) else _refusal(address)
        if kind is not None:
            named = host if host == str(address) else f"{host} ({address})"
            raise UrlRefusedError(
                f"refused {_display(parsed)}: {named} is a {kind} address. "
                "Use a public URL, or ask the operator to add the address to outbound.allow"
            )
    return ResolvedUrl(str(parsed), parsed.scheme, host, port, addresses[0])


def _check_deadline(deadline: float, url: str, timeout_s: float) -> None:
    if time.monotonic() > deadline:
        raise UrlUnreachableError(
            f"{_display(url)} took longer than {timeout_s * _DEADLINE_FACTOR:g} s to download"
        )


def _client(timeout_s: float) -> httpx.Client:
    # trust_env=False: an HTTP(S)_PROXY from the environment would let the proxy,
    # not check_url, decide where to connect. The transport still honours
    # SSL_CERT_FILE / SSL_CERT_DIR. No keep-alive: connections are keyed by IP
    # and port, and one verified for one host name must not carry another's request.
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    return httpx.Client(transport=transport, trust_env=False, timeout=httpx.Timeout(timeout_s))


@contextmanager
def _open(
    client: httpx.Client,
    method: str,
    target: ResolvedUrl,
    headers: dict[str, str],
    timeout_s: float,
    content: bytes | None = None,
) -> Iterator[httpx.Response]:
    original = httpx.URL(target.url)
    headers = {**headers, "Host": original.netloc.decode("ascii")}
    # TLS must still present and verify the real host name, not the IP.
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        with client.stream(
            method,
            original.copy_with(host=str(target.address)),
            headers=headers,
            content=content,
            extensions=extensions,
        ) as response:
            yield response
    except httpx.TimeoutException:
        raise UrlUnreachableError(
            f"{_display(original)} did not respond within {timeout_s:g} s"
        ) from None
    except httpx.HTTPError as exc:
        action = "fetch" if method == "GET" else f"{method} to"
        raise UrlUnreachableError(f"could not {action} {_display(original)}: {exc}") from None


def _read_capped(
    response: httpx.Response, url: str, max_bytes: int, deadline: float, timeout_s: float
) -> bytes:
    def too_large() -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"{_display(url)} is larger than the download limit of {max_bytes} bytes"
        )

    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large()
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise too_large()
        _check_deadline(deadline, url, timeout_s)
    return bytes(body)


def _result(
    response: httpx.Response,
    target: ResolvedUrl,
    etag: str | None,
    last_modified: str | None,
    max_bytes: int,
    deadline: float,
    timeout_s: float,
) -> FetchedResource:
    status = response.status_code
    if status == 304 and (etag or last_modified):
        # The validators the caller sent are still current if the 304 omits them.
        return FetchedResource(
            status=304,
            content=b"",
            etag=response.headers.get("etag", etag),
            last_modified=response.headers.get("last-modified", last_modified),
            content_type=response.headers.get("content-type"),
            final_url=target.url,
        )
    if not response.is_success:
        raise UrlUnreachableError(f"{_display(target.url)} returned HTTP {status}")
    return FetchedResource(
        status=status,
        content=_read_capped(response, target.url, max_bytes, deadline, timeout_s),
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
        content_type=response.headers.get("content-type"),
        final_url=target.url,
    )


def fetch(
    url: str,
    *,
    allow: AllowList,
    max_bytes: int,
    timeout_s: float,
    max_redirects: int,
    etag: str | None = None,
    last_modified: str | None = None,
    resolve: Resolver = socket.getaddrinfo,
) -> FetchedResource:
    """GET `url`, checking every hop with check_url and capping the body.

    Raises UrlRefusedError, UrlUnreachableError (DNS, connection, timeout,
    non-2xx, too many redirects) or PayloadTooLargeError. `resolve` is there
    for tests: host names that only they know.
    """
    requested = url
    deadline = time.monotonic() + timeout_s * _DEADLINE_FACTOR
    # identity: Content-Length is then the size we cap, and nothing inflates.
    headers = {"Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified

    with _client(timeout_s) as client:
        for _ in range(max_redirects + 1):
            _check_deadline(deadline, url, timeout_s)
            target = check_url(url, allow, resolve)
            with _open(client, "GET", target, headers, timeout_s) as response:
                if not response.has_redirect_location:
                    return _result(
                        response, target, etag, last_modified, max_bytes, deadline, timeout_s
                    )
                location = response.headers["location"]
            try:
                url = str(httpx.URL(target.url).join(location))
            except httpx.InvalidURL as exc:
                raise UrlUnreachableError(
                    f"{_display(target.url)} redirected to an invalid URL: {exc}"
                ) from None
    raise UrlUnreachableError(
        f"{_display(requested)} redirected more than {max_redirects} times"
    )


def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    allow: AllowList,
    timeout_s: float,
    resolve: Resolver = socket.getaddrinfo,
) -> PostResult:
    """POST `body` to `url` (a webhook), checked with check_url like fetch.

    Returns the status of any HTTP answer; the answer's body is read up to a
    cap (or the overall deadline) and dropped. Redirects are not followed: the caller retries a POST
    that was not answered 2xx, and a receiver that redirects could point that
    signed body anywhere (and 301/302 turn a POST into a GET on the way), so
    a 3xx is an answer to report, not a place to go. Raises UrlRefusedError or
    UrlUnreachableError (DNS, connection, timeout).
    """
    deadline = time.monotonic() + timeout_s * _DEADLINE_FACTOR
    target = check_url(url, allow, resolve)
    with _client(timeout_s) as client, _open(
        client, "POST", target, headers, timeout_s, content=body
    ) as response:
        read = 0
        try:
            # Raw: decompressing an answer nobody reads could only cost memory.
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= _POST_ANSWER_CAP or time.monotonic() > deadline:
                    break
        except httpx.HTTPError:
            pass  # the status has arrived; an answer cut short does not change it
        return PostResult(response.status_code)
