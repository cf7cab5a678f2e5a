"""A real HTTP server on loopback that answers like a provider's API.

Tests register routes (exact path or regex) with a fixed body or a handler that
computes the answer from the request, then point a `*_BASE_URL` at
`server.base_url`. Every request is recorded so tests can count them. An answer
can also be a transport fault: `Response(stall=…)` keeps the request waiting
(a server that stopped answering), `Response(reset=True)` drops the connection
with a TCP reset instead of answering.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Response:
    status: int = 200
    body: Any = None                       # dict/list → JSON; str/bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    stall: float = 0.0                     # seconds to keep the request waiting first (until the server closes)
    reset: bool = False                    # answer nothing: reset the connection

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


Handler = Callable[[Request], "Response | dict | list | str"]


class FakeApi:
    def __init__(self):
        self.routes: list[tuple[re.Pattern[str], Handler | Response]] = []
        self.requests: list[Request] = []
        self.latency = 0.0  # seconds every answer waits, as a distant server's would
        self._lock = threading.Lock()
        self._closing = threading.Event()   # ends every stalled answer when the server closes
        api = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server naming
                parts = urlsplit(self.path)
                request = Request(parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                                  dict(self.headers.items()))
                with api._lock:
                    api.requests.append(request)
                response = api._answer(request)
                if api.latency:
                    time.sleep(api.latency)
                if response.stall:
                    api._closing.wait(response.stall)
                if response.reset:
                    self.reset_connection()
                    return
                body = response.encoded()
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.content_type)
                    self.send_header("Content-Length", str(len(body)))
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting (a stalled answer); nobody is left to tell
                    self.close_connection = True

            def reset_connection(self):
                """Close with RST (SO_LINGER 0), as a crashing server or a middlebox does."""
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _RequestHandler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def route(self, path: str | re.Pattern[str], answer: Handler | Response | dict | list | str,
              *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """Answer GET `path` (exact string, or a compiled regex matched in full).

        Later routes win over earlier ones, so a test can override a default.
        """
        pattern = path if isinstance(path, re.Pattern) else re.compile(re.escape(path))
        if not callable(answer) and not isinstance(answer, Response):
            answer = Response(status=status, body=answer, headers=headers or {})
        self.routes.insert(0, (pattern, answer))

    def _answer(self, request: Request) -> Response:
        for pattern, answer in self.routes:
            if pattern.fullmatch(request.path):
                result = answer(request) if callable(answer) else answer
                return result if isinstance(result, Response) else Response(body=result)
        return Response(status=404, body={"error": f"no route for {request.path}"})

    def requests_to(self, path_prefix: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


def fixture_text(relative: str) -> str:
    return (FIXTURES / relative).read_text(encoding="utf-8")


def fixture_json(relative: str) -> Any:
    return json.loads(fixture_text(relative))
