"""The dashboard's HTTP plumbing: sessions, CSRF and login checks, security headers, byte
ranges for the player, and static files. What each path answers is
:class:`nemod.web.server.DashboardServer`'s business (the :class:`Routes` it is given).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import structlog

from nemod import __version__
from nemod.web import views
from nemod.web.auth import COOKIE, Gate

log = structlog.get_logger("nemod.web.server")

#: Sent with every page. No inline script or style; media and pictures from here only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: Sent with an output file opened directly (the picture's own styles are inline).
FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; media-src 'self'; sandbox"

#: Host names a dashboard that needs no login answers to. Any other ``Host`` is refused:
#: a web page whose own name was made to resolve to 127.0.0.1 (DNS rebinding) must not
#: read or drive an open dashboard.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})

#: The largest form body read (the dashboard's forms are a few fields).
MAX_FORM_BYTES = 64 * 1024
#: Request path → (file in nemod/web/static, content type).
STATIC = {"/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8"),
          "/static/icon.svg": ("icon.svg", "image/svg+xml"),
          "/favicon.ico": ("icon.svg", "image/svg+xml")}


class Answer:
    """A response: status, headers, body (or a file to stream)."""

    def __init__(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
                 headers: Mapping[str, str] | None = None, file: Path | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.file = file


def html_answer(text: str, status: int = HTTPStatus.OK) -> Answer:
    """An HTML page."""
    return Answer(status, text.encode(), "text/html; charset=utf-8")


def json_answer(data: Any, status: int = HTTPStatus.OK) -> Answer:
    """A JSON document."""
    return Answer(status, json.dumps(data).encode(), "application/json")


def redirect(location: str) -> Answer:
    """303 See Other to ``location`` (after a POST)."""
    return Answer(HTTPStatus.SEE_OTHER, b"", headers={"Location": location})


class Routes(Protocol):
    """What the handler asks of the dashboard."""

    gate: Gate

    def get(self, path: str, query: Mapping[str, str], session: str) -> Answer:
        """The answer to an allowed GET."""

    def post(self, path: str, form: Mapping[str, str]) -> Answer:
        """The answer to an allowed POST whose CSRF token was checked."""


class DashboardHandler(BaseHTTPRequestHandler):
    """One request; ``dashboard`` is set on a subclass per server."""

    dashboard: Routes
    server_version = f"nemod/{__version__}"
    protocol_version = "HTTP/1.1"

    # --- plumbing ------------------------------------------------------------------------

    def _session(self) -> tuple[str | None, bool]:
        """The request's session cookie (or a new one: True when it must be set)."""
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie is no cookie
            return None, True
        morsel = cookie.get(COOKIE)
        return (morsel.value, False) if morsel and morsel.value else (None, True)

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[7:].strip() if value.startswith("Bearer ") else None

    def _send(self, answer: Answer, *, head: bool = False, cookie: str | None = None) -> None:
        file_size = answer.file.stat().st_size if answer.file is not None else None
        status, start, end = answer.status, 0, (file_size or 0) - 1
        ranged = self.headers.get("Range", "")
        if file_size is not None and (m := re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())):
            first, last = m.groups()
            if first:
                start, end = int(first), min(int(last), file_size - 1) if last else file_size - 1
            elif last:
                start, end = max(0, file_size - int(last)), file_size - 1
            if start > end or start >= file_size:
                answer = Answer(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"",
                                headers={"Content-Range": f"bytes */{file_size}"})
                file_size, status = None, answer.status
            else:
                status = HTTPStatus.PARTIAL_CONTENT
                answer.headers["Content-Range"] = f"bytes {start}-{end}/{file_size}"
        length = (end - start + 1) if file_size is not None else len(answer.body)
        self.send_response(status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", answer.headers.pop("Content-Security-Policy", CSP))
        if file_size is not None:
            self.send_header("Accept-Ranges", "bytes")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if cookie is not None:
            self.send_header("Set-Cookie", f"{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict")
        self.end_headers()
        if head:
            return
        if answer.file is not None and file_size is not None:
            with answer.file.open("rb") as handle:
                handle.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = handle.read(min(256 * 1024, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        else:
            self.wfile.write(answer.body)

    def _guarded(self, work: Callable[[], Answer], head: bool = False, cookie: str | None = None) -> None:
        try:
            answer = work()
        except Exception as exc:  # the dashboard must answer, not drop the connection
            log.exception("dashboard_error", path=self.path)
            answer = Answer(HTTPStatus.INTERNAL_SERVER_ERROR, f"error: {type(exc).__name__}\n".encode())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the browser went away
            self._send(answer, head=head, cookie=cookie)

    # --- methods ---------------------------------------------------------------------------

    def _host_refused(self) -> bool:
        """Answer 421 and return True when no login is required and the request names a host
        other than loopback (see :data:`LOOPBACK_NAMES`)."""
        if self.dashboard.gate.required:
            return False
        name = urlsplit(f"//{self.headers.get('Host', '')}").hostname or ""
        if name in LOOPBACK_NAMES:
            return False
        log.warning("dashboard_host_refused", host=name[:100])
        self._guarded(lambda: Answer(HTTPStatus.MISDIRECTED_REQUEST, b"refused: this dashboard answers "
                                     b"only to 127.0.0.1 or localhost unless status_auth is set\n",
                                     headers={"Connection": "close"}))  # its body, if any, is unread
        return True

    def _content_length(self) -> int | None:
        """The request body's length, or None (after answering 400) when the header is not a
        non-negative whole number."""
        text = self.headers.get("Content-Length") or "0"
        if not text.isdigit():
            self._guarded(lambda: Answer(HTTPStatus.BAD_REQUEST, b"bad Content-Length\n",
                                         headers={"Connection": "close"}))
            return None
        return int(text)

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def _get(self, *, head: bool) -> None:
        if self._host_refused():
            return
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        session, _ = self._session()
        new_cookie = None
        if session is None:  # every browser gets a cookie: its CSRF tokens are derived from it
            session = new_cookie = secrets.token_urlsafe(32)
        gate = self.dashboard.gate
        if path in STATIC:
            name, kind = STATIC[path]
            body = resources.files("nemod.web").joinpath("static", name).read_bytes()
            self._guarded(lambda: Answer(HTTPStatus.OK, body, kind), head, new_cookie)
            return
        if path == "/login":
            self._guarded(lambda: html_answer(views.login(gate.csrf(session), "failed" in query)), head, new_cookie)
            return
        if path != "/healthz" and not gate.allowed(session, self._bearer()):
            if path.startswith("/api/") or path in ("/metrics", "/status.json"):
                self._guarded(lambda: Answer(HTTPStatus.UNAUTHORIZED, b"log in first\n"), head, new_cookie)
            else:
                self._guarded(lambda: redirect("/login"), head, new_cookie)
            return
        self._guarded(lambda: self.dashboard.get(path, query, session or ""), head, new_cookie)

    def do_POST(self) -> None:
        if self._host_refused():
            return
        path = unquote(urlsplit(self.path).path)
        length = self._content_length()
        if length is None:
            return
        if length > MAX_FORM_BYTES:
            self._guarded(lambda: Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"form too large\n",
                                         headers={"Connection": "close"}))
            return
        raw = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        session, _ = self._session()
        gate = self.dashboard.gate
        origin = self.headers.get("Origin")
        host = self.headers.get("Host", "")
        if (origin not in (None, "null") and urlsplit(origin).netloc != host) or not gate.csrf_ok(
                session, form.get("csrf")):
            log.warning("dashboard_csrf_refused", path=path)
            self._guarded(lambda: Answer(HTTPStatus.FORBIDDEN, b"refused: this form did not come from "
                                         b"this page (missing or wrong CSRF token); reload and try again\n"))
            return
        if path == "/login":
            new = gate.login(form.get("secret", ""))
            if new is None:
                log.warning("dashboard_login_failed")
                self._guarded(lambda: redirect("/login?failed=1"))
            else:
                self._guarded(lambda: redirect("/"), cookie=new)
            return
        if path == "/logout":
            gate.logout(session)
            self._guarded(lambda: redirect("/login"), cookie=secrets.token_urlsafe(32))
            return
        if not gate.allowed(session, self._bearer()):
            self._guarded(lambda: Answer(HTTPStatus.UNAUTHORIZED, b"log in first\n"))
            return
        form["_session"] = session or ""
        self._guarded(lambda: self.dashboard.post(path, form))

    def _not_allowed(self) -> None:
        self._guarded(lambda: Answer(HTTPStatus.METHOD_NOT_ALLOWED, b"GET or POST\n",
                                     headers={"Allow": "GET, HEAD, POST"}))

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard_request", line=format % args)
