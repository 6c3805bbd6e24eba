"""A real HTTP server that receives job callbacks in tests, like a customer's would."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx

from tests.helpers.ports import free_port
from voicegraph.jobs.callbacks import IDEMPOTENCY_HEADER


@dataclass(frozen=True)
class Received:
    path: str  # with the query string
    headers: httpx.Headers  # case-insensitive
    body: bytes
    json: Any  # None when the body is not JSON
    status: int  # what the receiver answered


class _Handler(BaseHTTPRequestHandler):
    # A client that stops sending must not keep stop() waiting for its thread.
    timeout = 5

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            parsed = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = None
        status = self.server.receiver._record(  # type: ignore[attr-defined]
            self.path, httpx.Headers(list(self.headers.items())), body, parsed
        )
        answer = b'{"ok": true}' if 200 <= status < 300 else b'{"ok": false}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class CallbackReceiver:
    """Records every POST; answers 200 unless told otherwise with respond_with.

    Use as a context manager, or start() and stop(). stop() closes the port,
    so a delivery meanwhile is refused; restart() listens on the same port again.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        # Reentrant: wait_for's predicate may read the properties below.
        self._changed = threading.Condition(threading.RLock())
        self._received: list[Received] = []
        self._status = 200
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        # Joined by server_close, so nothing of this server outlives stop().
        server.daemon_threads = False
        server.receiver = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(5)
        self._server = self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url(self, path: str = "/api/tts/callback") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def respond_with(self, status: int) -> None:
        """Answer every following delivery with `status` (500: an outage)."""
        with self._changed:
            self._status = status

    @property
    def received(self) -> list[Received]:
        """Every POST, in order of arrival."""
        with self._changed:
            return list(self._received)

    @property
    def processed(self) -> list[Received]:
        """What a real receiver would have acted on: each delivery it answered
        2xx, once per Idempotency-Key (the first); ones without a key each count."""
        with self._changed:
            seen: set[str] = set()
            processed = []
            for delivery in self._received:
                if not 200 <= delivery.status < 300:
                    continue
                key = delivery.headers.get(IDEMPOTENCY_HEADER)
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                processed.append(delivery)
            return processed

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until predicate() holds, checked after every POST; False on timeout."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _record(self, path: str, headers: httpx.Headers, body: bytes, parsed: Any) -> int:
        with self._changed:
            self._received.append(Received(path, headers, body, parsed, self._status))
            self._changed.notify_all()
            return self._status
