"""The feed model over real HTTP on loopback, plus the network's misbehaviour.

Faults live here, not in the model: a reset connection, a truncated body or an HTML page from a
proxy are things the transport does to an API that is itself well-behaved, and a fault must not
touch the model's state (no rate-limit slot, no access record, no entry in `model.requests`).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .feed import FeedModel, _error

# Decides, from the 1-based number of the request, which fault (if any) it suffers. It may also
# just sleep and return None, to slow every request down (e.g. to land a kill mid-backfill).
FaultPolicy = Callable[[int], str | None]
FAULTS = ("429", "500", "502", "503", "529", "slow", "reset", "truncate",
          "html", "html502", "badjson", "noenvelope")
_HTML = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep the test process alive
    sim: SimServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the plugin's connection pool expects
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silent: tests read the plugin's stderr, and a request log would only be noise there."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header from the API's clock, not the host's: the base class sends exactly
        one Date header through this method, so overriding it keeps it at one, and a model with
        a `clock_offset` shows the plugin a skewed server clock the way a real one would."""
        moment = self.server.sim.model.clock() if timestamp is None else timestamp
        return formatdate(moment, usegmt=True)

    def do_GET(self) -> None:  # noqa: N802
        sim = self.server.sim
        fault = sim.next_fault()
        if fault:
            self._fault(fault)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = sim.model.handle("GET", self.path, headers)
        self._send(resp.status, resp.headers, resp.body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fault(self, fault: str) -> None:
        if fault == "reset":
            # SO_LINGER on with a zero timeout: close() sends RST, not FIN ("connection reset").
            self.close_connection = True
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            return
        if fault == "truncate":
            # Promise more than is sent, then hang up: the client sees an incomplete body.
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "4096")
            self.end_headers()
            self.wfile.write(b'{"data":[{"id":"activity_01')
            self.wfile.flush()
            self.close_connection = True
            return
        if fault == "slow":
            time.sleep(3)
        if fault in ("429", "500", "502", "503", "529", "slow"):
            status = 503 if fault == "slow" else int(fault)
            kind = {"429": "rate_limit_error", "529": "overloaded_error"}.get(fault, "api_error")
            # The error body only: a retry-after would make the plugin wait a second per injected 429.
            self._send(status, {"content-type": "application/json"}, _error(status, kind, "Simulated fault").body)
        elif fault in ("html", "html502"):
            self._send(200 if fault == "html" else 502, {"content-type": "text/html"}, _HTML)
        elif fault == "badjson":
            self._send(200, {"content-type": "application/json"}, b'{"data": [{"id": "activity_')
        elif fault == "noenvelope":
            self._send(200, {"content-type": "application/json"}, b'{"items": []}')
        else:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


class SimServer:
    """The model on 127.0.0.1 in a background thread.

    `faults` is a `FaultPolicy`; it is a plain attribute, so a test may switch it on and off
    while the plugin runs (an outage that ends, say).
    """

    def __init__(self, model: FeedModel, port: int = 0, host: str = "127.0.0.1",
                 tls: tuple[str, str] | None = None, *, faults: FaultPolicy | None = None) -> None:
        """`tls`: (certificate, key) files to serve https, for testing certificate checks."""
        self.model = model
        self.faults = faults
        self.request_count = 0  # every request, faulted or not: the number a FaultPolicy sees
        self._count_lock = threading.Lock()
        self.httpd = _HTTPServer((host, port), _Handler)
        self.httpd.sim = self
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="simulator", daemon=True)

    def next_fault(self) -> str | None:
        """Number this request and ask the policy about it. The policy runs outside the lock,
        so a policy that sleeps delays its own request only."""
        with self._count_lock:
            self.request_count += 1
            number = self.request_count
        policy = self.faults
        return policy(number) if policy else None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> SimServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
