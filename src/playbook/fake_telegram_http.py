"""The HTTP plumbing of the fake Bot API: the loopback server, request bodies, webhook posts.

Internal to `playbook.fake_telegram`, which holds the protocol; this module knows only that the
fake answers `call(token, method, params)`, and how to put an update on a city's webhook.
Standard library only.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import http.client
import json
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

JSON = dict[str, Any]


class Api(Protocol):
    """What the server needs of the fake."""

    stopping: threading.Event
    hold: float
    """Seconds a `timeout` answer holds the request."""

    def call(self, token: str, method: str, params: JSON) -> tuple[str, int, JSON]:
        """`("reply", status, body)`, or `("timeout"|"drop", 0, {})`."""
        ...


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


def error(code: int, description: str) -> JSON:
    """A Bot API error body."""
    return {"ok": False, "error_code": code, "description": description}


def params(content_type: str, body: bytes, query: str) -> JSON:
    """The request's parameters from its query and its JSON, form or multipart body.

    File parts become `Upload`s; `ValueError` (or `TypeError`) for a body that does not parse.
    """
    found: JSON = dict(parse_qsl(query, keep_blank_values=True))
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" and body:
        found.update(dict(json.loads(body)))
    elif kind == "application/x-www-form-urlencoded":
        found.update(parse_qsl(body.decode(), keep_blank_values=True))
    elif kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            filename = part.get_filename()
            if isinstance(name, str) and isinstance(payload, bytes):
                found[name] = (Upload(filename, part.get_content_type(), payload) if filename
                               else payload.decode())
    return found


class Server(ThreadingHTTPServer):
    """Serves the fake on 127.0.0.1, an ephemeral port, one thread per connection."""

    request_queue_size = 256  # hundreds of clients may connect at once
    daemon_threads = False  # so that server_close() joins them
    block_on_close = True

    def __init__(self, api: Api) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def drop_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self.connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client that gave up on a held request is expected, not an error."""


class Handler(BaseHTTPRequestHandler):
    """One connection: `/bot<token>/<method>` requests, answered by the fake."""

    protocol_version = "HTTP/1.1"  # keep-alive, as PTB's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: Server

    def setup(self) -> None:
        """Track the connection so that closing the fake can cut it."""
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
            if self.server.api.stopping.is_set():
                self.connection.shutdown(socket.SHUT_RDWR)  # accepted while closing

    def finish(self) -> None:
        """Forget the connection."""
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        """Route one Bot API request to the fake and answer as it says."""
        api = self.server.api
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = re.fullmatch(r"/bot([^/]+)/(\w+)", url.path)
        if route is None:
            self._reply(404, error(404, "Not Found"))
            return
        try:
            found = params(self.headers.get("Content-Type", ""), body, url.query)
        except (ValueError, TypeError):
            self._reply(400, error(400, "Bad Request: invalid request body"))
            return
        action, status, answer = api.call(unquote(route.group(1)), route.group(2), found)
        if action == "timeout":
            api.stopping.wait(api.hold)
        if action != "reply":
            self.close_connection = True  # close the socket without a response
            return
        self._reply(status, answer)

    do_GET = do_POST

    def _reply(self, status: int, answer: JSON) -> None:
        body = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the request line holds the bot token."""


class Poster:
    """Puts updates on a webhook, one request at a time; `abort()` cuts one short."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: http.client.HTTPConnection | None = None
        self._aborted = False

    def post(self, url: str, update: JSON, headers: dict[str, str]) -> str | None:
        """POST the update as JSON: None if answered 2xx, else the error as Telegram words it."""
        parts = urlsplit(url)
        kind = (http.client.HTTPSConnection if parts.scheme == "https"
                else http.client.HTTPConnection)
        connection = kind(parts.hostname or "", parts.port, timeout=self.timeout)
        with self._lock:
            if self._aborted:
                return "Delivery stopped"
            self._connection = connection
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(update, ensure_ascii=False).encode()
        try:
            connection.request("POST", target, body,
                               {"Content-Type": "application/json", **headers})
            response = connection.getresponse()
            response.read()
        except TimeoutError:
            return "Read timeout expired"
        except ConnectionRefusedError:
            return "Connection refused"
        except (OSError, http.client.HTTPException) as exc:
            return f"Connection failed: {type(exc).__name__}"
        finally:
            with self._lock:
                self._connection = None
            connection.close()
        if 200 <= response.status < 300:
            return None
        return f"Wrong response from the webhook: {response.status} {response.reason}"

    def abort(self) -> None:
        """Fail the post under way, and every later one (the fake is closing)."""
        with self._lock:
            self._aborted = True
            sock = self._connection.sock if self._connection is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
