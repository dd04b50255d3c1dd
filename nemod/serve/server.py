"""``nemod serve``'s HTTP layer: the NemoVideo API over :class:`nemod.serve.service.Service`.

Built on the standard library's threading HTTP server (one thread per connection,
HTTP/1.1 keep-alive). Bodies are streamed: uploads are parsed chunk by chunk with
``python-multipart`` straight to disk, SSE is written as chunked transfer encoding
(so a dropped stream is visible to the client as an incomplete body), downloads are
sent in 1 MiB chunks. JSON bodies are limited to 4 MiB.

Routes (all but the token call and output URLs need ``Authorization: Bearer``)::

    POST /api/auth/anonymous-token          X-Client-Id → token, credits
    POST /api/auth/claim-token              → claim_token
    POST /api/tasks/me/with-session/nemo_agent
    POST /api/upload-video/nemo_agent/me/<sid>    multipart field "files"
    POST /run_sse                           ADK events with heartbeats
    GET  /api/credits/balance/simple
    GET  /api/state/nemo_agent/me/<sid>/latest
    POST /api/render/proxy/lambda
    GET  /api/render/proxy/lambda/<id>
    GET  /api/render/proxy/<id>/download
    GET  /files/<id>/<key>.mp4              output.url (the key is the permission)
    GET|POST|DELETE /admin/...              faults, counters, balance (admin token)
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

import structlog
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from nemod.engine.local import LocalEngine
from nemod.serve.faults import FAULTS, Faults
from nemod.serve.service import ApiError, ServerSession, ServeSettings, Service, TokenInfo

_JSON_LIMIT = 4 * 1024 * 1024
_CHUNK = 1 << 20
_SID = r"([0-9a-f]{32})"
_RID = r"(render_[A-Za-z0-9_-]{1,64})"

log = structlog.get_logger("nemod.serve")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: NemoServer) -> None:
        self.app = app
        super().__init__(address, _Handler)


class NemoServer:
    """A NemoVideo-compatible server over the local engine.

    ``start()`` serves in a background thread (tests, the benchmark); ``serve_forever()``
    in the caller's thread (the CLI). ``stop()`` ends everything and joins every thread.
    """

    def __init__(
        self,
        settings: ServeSettings,
        engine: LocalEngine,
        *,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.faults = faults or Faults()
        self.service = Service(settings, engine, self.faults, clock=clock)
        self.admin_token = settings.admin_token or secrets.token_urlsafe(24)
        self._httpd = _Server((settings.host, settings.port), self)
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL clients use."""
        host, port = self._httpd.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="nemod-serve",
            daemon=True,
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until ``stop()`` (from another thread) or Ctrl-C."""
        self._httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving, close open connections, stop background work, join threads."""
        self.service.stopping.set()
        self._httpd.shutdown()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)
        self.service.stop()
        deadline = time.monotonic() + 10
        for thread in threading.enumerate():
            if thread.name.startswith("nemod-serve-conn") and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> NemoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def track(self, connection: socket.socket, add: bool) -> None:
        """Remember open connections so ``stop`` can close idle keep-alive ones."""
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Connection(BaseHTTPRequestHandler):
    """HTTP/1.1 plumbing of one keep-alive connection to ``nemod serve``: connection
    tracking, the access log, JSON answers and bodies, draining unread bodies, chunked
    writes for SSE and simulated drops. The API itself is :class:`_Handler`."""

    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120
    _consumed = False

    def setup(self) -> None:
        threading.current_thread().name = f"nemod-serve-conn-{id(self):x}"
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # delayed ACKs hold small answers back by up to 200 ms on keep-alive connections.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.app.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Access log through structlog (paths carry no secrets; headers are not logged)."""
        log.debug("serve_request", line=format % args)

    @property
    def app(self) -> NemoServer:
        return self.server.app

    @property
    def service(self) -> Service:
        return self.server.app.service

    def _send_json(self, body: object, status: int = 200) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _ok(self, data: object) -> None:
        self._send_json({"code": 0, "data": data})

    def _length(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length", "0")))
        except ValueError:
            raise ApiError("bad Content-Length", status=400) from None

    def _json_body(self) -> dict[str, Any]:
        length = self._length()
        if length > _JSON_LIMIT:
            self.close_connection = True
            raise ApiError("request body too large", status=413)
        raw = self.rfile.read(length) if length else b""
        self._consumed = True
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError("the body is not JSON", status=400) from None
        if not isinstance(body, dict):
            raise ApiError("the body must be a JSON object", status=400)
        return body

    def _drain(self) -> None:
        """Read (and discard) an unread request body so keep-alive stays in step;
        a very large one closes the connection instead."""
        if self._consumed:
            return
        self._consumed = True
        length = self._length() if "Content-Length" in self.headers else 0
        if length > 4 * _JSON_LIMIT:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, _CHUNK))
            if not chunk:
                break
            length -= len(chunk)

    def _read_some(self, remaining: int) -> bytes:
        chunk = self.rfile.read(min(remaining, _CHUNK))
        if not chunk:
            raise ApiError("the upload broke off", status=400)
        return chunk

    def _event(self, payload: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Break the connection without ending the chunked body (a network drop)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)


class _Handler(_Connection):
    """The NemoVideo API routes (and the admin endpoints) over :class:`_Connection`."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        self._consumed = False  # one handler serves every request of a keep-alive connection
        try:
            if path.startswith("/admin/"):
                self._admin(method, path)
                return
            if path == "/health":
                self._send_json({"code": 0, "data": {"ok": True}})
                return
            self._inject_faults(path)
            self._route(method, path)
        except ApiError as exc:
            self._drain()
            self._send_json({"code": exc.code, "message": str(exc), "data": None}, status=exc.status or 200)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _inject_faults(self, path: str) -> None:
        if self.app.faults.take("http_429", path):
            self._drain()
            raise ApiError("rate limited", status=429)
        if self.app.faults.take("http_5xx", path):
            self._drain()
            raise ApiError("injected server error", status=503)

    def _route(self, method: str, path: str) -> None:
        routes: list[tuple[str, str, Callable[..., None], str]] = [
            ("POST", r"/api/auth/anonymous-token", self._anonymous_token, ""),
            ("POST", r"/api/auth/claim-token", self._claim_token, "read"),
            ("POST", r"/api/tasks/me/with-session/nemo_agent", self._new_session, "write"),
            ("POST", rf"/api/upload-video/nemo_agent/me/{_SID}", self._upload, "upload"),
            ("POST", r"/run_sse", self._run_sse, "write"),
            ("GET", r"/api/credits/balance/simple", self._balance, "read"),
            ("GET", rf"/api/state/nemo_agent/me/{_SID}/latest", self._state, "read"),
            ("POST", r"/api/render/proxy/lambda", self._start_render, "render"),
            ("GET", rf"/api/render/proxy/lambda/{_RID}", self._render_status, "read"),
            ("GET", rf"/api/render/proxy/{_RID}/download", self._download, "read"),
            ("GET", rf"/files/{_RID}/([A-Za-z0-9_-]{{8,64}})\.mp4", self._output_file, ""),
        ]
        for route_method, pattern, handler, scope in routes:
            match = re.fullmatch(pattern, path)
            if match is None:
                continue
            if route_method != method:
                raise ApiError("method not allowed", status=405)
            if handler in (self._anonymous_token, self._output_file):
                handler(*match.groups())
            else:
                handler(self._auth(path, scope), *match.groups())
            return
        raise ApiError("no such endpoint", status=404)

    def _auth(self, path: str, scope: str) -> TokenInfo:
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        return self.service.authenticate(token, path, scope)

    # --- endpoints -----------------------------------------------------------------------

    def _anonymous_token(self) -> None:
        self._drain()
        token, credits = self.service.anonymous_token(self.headers.get("X-Client-Id", ""))
        self._ok(
            {
                "token": token,
                "credits": credits,
                "expires_in": int(self.service.settings.token_lifetime_seconds),
            }
        )

    def _claim_token(self, info: TokenInfo) -> None:
        body = self._json_body()
        session = self.service.session(str(body.get("session_id", "")), info.account, self.path)
        self._ok({"claim_token": "clm_" + secrets.token_hex(12), "task_id": session.task_id})

    def _new_session(self, info: TokenInfo) -> None:
        body = self._json_body()
        session = self.service.create_session(info.account, str(body.get("language") or ""))
        self._ok({"session_id": session.session_id, "task_id": session.task_id})

    def _balance(self, info: TokenInfo) -> None:
        self._ok(self.service.balance(info.account))

    def _state(self, info: TokenInfo, session_id: str) -> None:
        session = self.service.session(session_id, info.account, self.path)
        self._ok({"state": self.service.state(session), "session_id": session_id})

    def _upload(self, info: TokenInfo, session_id: str) -> None:
        session = self.service.session(session_id, info.account, self.path)
        content_type, options = parse_options_header(self.headers.get("Content-Type", ""))
        if content_type == b"application/json":
            self._json_body()
            raise ApiError("upload by URL is not available on nemod serve; upload the file", code=4001)
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            raise ApiError("expected multipart/form-data", status=400)
        if "Content-Length" not in self.headers:
            self.close_connection = True
            raise ApiError("Content-Length required", status=411)
        length = self._length()
        limit = self.service.settings.max_upload_bytes
        if length > 2 * limit + _JSON_LIMIT:
            self.close_connection = True
            raise ApiError(f"file too large (limit {limit} bytes)", code=4002, status=413)
        self._consumed = True
        receiver = _UploadReceiver(self.service, session, limit)
        parser = MultipartParser(options[b"boundary"], receiver.callbacks())
        remaining = length
        try:
            while remaining > 0:
                chunk = self._read_some(remaining)
                remaining -= len(chunk)
                parser.write(chunk)
            parser.finalize()
        except ApiError:
            receiver.abort()
            raise
        except Exception:  # noqa: BLE001 - a malformed body is the client's error
            receiver.abort()
            raise ApiError("malformed multipart body", status=400) from None
        finally:
            receiver.close()
        if receiver.error is not None:
            raise receiver.error
        if not receiver.files:
            raise ApiError("no file in field 'files'", status=400)
        self._ok({"files": receiver.files, "session_id": session_id})

    def _start_render(self, info: TokenInfo) -> None:
        body = self._json_body()
        if not self.headers.get("X-Skill-Source"):
            raise ApiError("exports need the X-Skill-* attribution headers", status=402)
        session = self.service.session(str(body.get("sessionId", "")), info.account, self.path)
        render = self.service.start_render(session, str(body.get("id", "")), body.get("draft"))
        self._ok({"id": render.render_id, "status": render.status})

    def _render_status(self, info: TokenInfo, render_id: str) -> None:
        render = self.service.render(render_id, info.account)
        output: dict[str, Any] = {}
        if render.status == "completed":
            key = render.url_key
            if self.app.faults.take("bad_output_url"):
                key = "missing" + secrets.token_hex(8)
            output = {"url": f"{self.app.url}/files/{render.render_id}/{key}.mp4"}
        body = {
            "id": render.render_id,
            "status": render.status,
            "output": output,
            "message": render.message,
        }
        self._send_json({"code": 0, **body, "data": body})

    def _download(self, info: TokenInfo, render_id: str) -> None:
        render = self.service.render(render_id, info.account)
        self._send_video(render.video if render.status == "completed" else None)

    def _output_file(self, render_id: str, key: str) -> None:
        self._send_video(self.service.render_by_key(render_id, key).video)

    def _send_video(self, video: Path | None) -> None:
        if video is None or not video.is_file():
            raise ApiError("the export is not ready", status=404)
        size = video.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with video.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                self.wfile.write(chunk)

    # --- SSE -----------------------------------------------------------------------------

    def _run_sse(self, info: TokenInfo) -> None:
        body = self._json_body()
        session = self.service.session(str(body.get("session_id", "")), info.account, self.path)
        message = body.get("new_message")
        parts = message.get("parts") if isinstance(message, dict) else None
        text = " ".join(str(part.get("text", "")) for part in parts or [] if isinstance(part, dict)).strip()
        if not text:
            raise ApiError("new_message.parts[].text is required", status=400)
        edit = self.service.start_edit(session, text)
        drop = self.app.faults.take("drop_sse")
        silent = self.app.faults.take("no_text")
        slow = self.app.faults.take("slow_heartbeats")
        log.info("serve_instruction", session=session.session_id, count=session.instructions)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        invocation = "e-" + uuid.uuid4().hex[:12]
        self._event(_adk(invocation, {"functionCall": {"name": edit.tool, "args": {"instruction": text}}}))
        settings = self.service.settings
        interval = settings.slow_heartbeat_seconds if slow else settings.heartbeat_seconds
        beats = 0
        # Slow mode stands for a long generation: a few sparse heartbeats before the answer.
        while True:
            if slow:
                self.service.stopping.wait(interval)
                finished = edit.done.is_set() and beats >= settings.slow_min_heartbeats
            else:
                finished = edit.done.wait(interval)
            if finished or self.service.stopping.is_set():
                break
            self._write_chunk(
                b'event: heartbeat\ndata: {"type":"heartbeat"}\n\n' if beats % 2 == 0 else b"data: \n\n"
            )
            beats += 1
            if drop:
                self._drop()
                return
        if drop:
            self._drop()
            return
        self._event(
            _adk(
                invocation,
                {"functionResponse": {"name": edit.tool, "response": {"ok": bool(edit.answer)}}},
            )
        )
        if not silent and edit.answer:
            self._event(_adk(invocation, {"text": edit.answer}, partial=True))
            self._event(_adk(invocation, {"text": edit.answer}))
        self._write_chunk(b"")

    # --- admin ---------------------------------------------------------------------------

    def _admin(self, method: str, path: str) -> None:
        header = self.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not secrets.compare_digest(given.encode(), self.app.admin_token.encode()):
            self._drain()
            raise ApiError("admin token required", status=403)
        if path == "/admin/faults" and method == "POST":
            body = self._json_body()
            try:
                self.app.faults.arm(
                    str(body.get("name", "")), int(body.get("count", 1)), str(body.get("path", ""))
                )
            except ValueError as exc:
                raise ApiError(str(exc), status=400) from None
            self._ok(self.app.faults.snapshot())
        elif path == "/admin/faults" and method == "DELETE":
            self._drain()
            self.app.faults.clear()
            self._ok(self.app.faults.snapshot())
        elif path == "/admin/faults" and method == "GET":
            self._ok({**self.app.faults.snapshot(), "known": dict(FAULTS)})
        elif path == "/admin/stats" and method == "GET":
            self._ok(
                {
                    "instructions": dict(self.service.instruction_counts),
                    "received": dict(self.service.received_counts),
                    "work": list(self.service.work),
                    "renders": dict(self.service.render_counts),
                }
            )
        elif path == "/admin/credits" and method == "POST":
            body = self._json_body()
            self.service.set_balance(int(body.get("available", 0)))
            self._ok({"available": int(body.get("available", 0))})
        else:
            self._drain()
            raise ApiError("no such admin endpoint", status=404)


def _adk(invocation: str, part: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """One ADK Event (camelCase aliases, as the ADK API server serialises them)."""
    return {
        "content": {"parts": [part], "role": "model"},
        "author": "nemo_agent",
        "id": uuid.uuid4().hex[:8],
        "invocationId": invocation,
        "partial": partial,
        "timestamp": time.time(),
    }


class _UploadReceiver:
    """Multipart callbacks writing field ``files`` parts to the session folder."""

    def __init__(self, service: Service, session: ServerSession, limit: int) -> None:
        self.service = service
        self.session = session
        self.limit = limit
        self.files: list[dict[str, Any]] = []
        self.error: ApiError | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._handle: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_field = self._header_value = b""

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        if self.error is not None:
            return
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"files" or b"filename" not in options:
            return
        name = options[b"filename"].decode("utf-8", "replace")
        try:
            self._path = self.service.media_target(self.session, name)
        except ApiError as exc:
            self.error = exc
            return
        self._handle = self._path.open("wb")
        self._size = 0

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is None:
            return
        self._size += end - start
        if self._size > self.limit:
            self.error = ApiError(f"file too large (limit {self.limit} bytes)", code=4002)
            self.abort()
            return
        self._handle.write(data[start:end])

    def _part_end(self) -> None:
        if self._handle is None or self._path is None:
            return
        self._handle.close()
        self._handle = None
        self.files.append(self.service.media_done(self.session, self._path))
        self._path = None

    def abort(self) -> None:
        """Throw away the part being written."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._path is not None:
            self.service.media_failed(self.session, self._path)
            self._path = None

    def close(self) -> None:
        """Close any open file (after an error)."""
        self.abort()
