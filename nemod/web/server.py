"""The dashboard: nemod's web page for the people who run it, served by the daemon.

=========================================  ==================================================
``GET /``                                  overview (live: ``/static/app.js`` polls ``/api/overview``)
``GET /jobs?q=&state=&folder=&rule=&before=``  the jobs list, 50 a page (keyset on the id)
``GET /jobs/<id>``                         one job: facts, advice, actions, outputs, picture, player
``GET /jobs/<id>/files/<suffix>``          an output recorded in the store for that job (Range ok)
``GET /api/overview``, ``/api/jobs/<id>``  JSON for the live updates
``POST /jobs/<id>/retry|cancel|forget``    the CLI's actions (form posts with a CSRF token)
``POST /folders/pause|resume``             stop or restart starting jobs from a watch folder
``POST /explain``                          which rule a file name matches and why
``POST /login``, ``/logout``               when ``status_auth`` is configured
``GET /healthz``, ``/metrics``, ``/status.json``  as before (:mod:`nemod.service.http`)
=========================================  ==================================================

Every answer carries a Content-Security-Policy without inline script, ``X-Frame-Options:
DENY`` and ``nosniff``. It binds 127.0.0.1 unless ``status_host`` says otherwise, and
refuses to start on another address without ``status_auth`` (the config check refuses it
first). All store access goes through :class:`nemod.web.data.DashboardData`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import mimetypes
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import structlog

from nemod import __version__
from nemod.config import Config, is_loopback
from nemod.errors import ConfigError, NemodError, Problem
from nemod.service import metrics
from nemod.service.http import health_checks
from nemod.service.status import STATES, StatusSource, to_json
from nemod.store.base import JobStore
from nemod.web import views
from nemod.web.auth import COOKIE, Gate
from nemod.web.data import DashboardData, JobFilter, JobPage

log = structlog.get_logger(__name__)

#: Sent with every page. No inline script or style; media and pictures from here only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: Sent with an output file opened directly (the picture's own styles are inline).
FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; media-src 'self'; sandbox"

MAX_FORM_BYTES = 64 * 1024
_JOB = re.compile(r"^/jobs/(\d{1,18})$")
_FILE = re.compile(r"^/jobs/(\d{1,18})/files/([A-Za-z0-9._-]{1,40})$")
_ACTION = re.compile(r"^/jobs/(\d{1,18})/(retry|cancel|forget)$")
_STATIC = {"/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/static/style.css": ("style.css", "text/css; charset=utf-8"),
           "/static/icon.svg": ("icon.svg", "image/svg+xml"),
           "/favicon.ico": ("icon.svg", "image/svg+xml")}


class DaemonLike(Protocol):
    """What the dashboard uses of the running daemon."""

    config: Config
    store: JobStore

    def request_cancel(self, job_id: int) -> str:
        """See :meth:`nemod.daemon.Daemon.request_cancel`."""

    def live_progress(self) -> dict[int, tuple[str | None, float | None]]:
        """See :meth:`nemod.daemon.Daemon.live_progress`."""


class Answer:
    """A response: status, headers, body (or a file to stream)."""

    def __init__(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
                 headers: Mapping[str, str] | None = None, file: Path | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.file = file


def _html(text: str, status: int = HTTPStatus.OK) -> Answer:
    return Answer(status, text.encode(), "text/html; charset=utf-8")


def _json(data: Any, status: int = HTTPStatus.OK) -> Answer:
    return Answer(status, json.dumps(data).encode(), "application/json")


def _redirect(location: str) -> Answer:
    return Answer(HTTPStatus.SEE_OTHER, b"", headers={"Location": location})


class DashboardServer:
    """The dashboard on ``host:port`` (port 0: a free one), from one background thread.

    ``status`` is the status source; ``health`` the daemon's live checks. The store and the
    daemon's controls arrive with :meth:`attach` (the daemon calls it when it starts);
    ``data`` may be given directly (tests, a dashboard without a daemon). Raises
    ConfigError when ``host`` is not loopback and ``config.status_auth`` is not set.
    """

    def __init__(self, config: Config, status: StatusSource, *, port: int, host: str | None = None,
                 health: Callable[[], Mapping[str, bool]] | None = None,
                 data: DashboardData | None = None) -> None:
        self.host = host or config.status_host
        if not is_loopback(self.host) and not config.status_auth.configured:
            raise ConfigError([Problem(str(config.path), None, "status_host",
                                       f"refusing to serve the dashboard on {self.host} without status_auth")])
        self.config = config
        self.status = status
        self.health = health
        self.gate = Gate(config.status_auth)
        self.data = data
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def attach(self, daemon: DaemonLike) -> None:
        """Serve ``daemon``'s store, config (following reloads) and cancel requests."""
        self.data = DashboardData(lambda: daemon.config, daemon.store, self.status, controls=daemon)

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._port if self._server is None else int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port/``."""
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve in a background thread; raises OSError when the port is taken."""
        owner = self

        class Handler(_Handler):
            dashboard = owner

        self._server = ThreadingHTTPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="nemod-dashboard", daemon=True)
        self._thread.start()
        log.info("dashboard_started", url=self.url, login=self.gate.required)

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    # --- routing (called by the handler; every answer is built here) -------------------

    def get(self, path: str, query: Mapping[str, str], session: str) -> Answer:
        """The answer to ``GET path`` for an allowed request."""
        if path in ("/healthz", "/metrics", "/status.json"):
            return self._service(path)
        data = self.data
        if data is None:
            return Answer(HTTPStatus.SERVICE_UNAVAILABLE, b"the daemon is starting\n")
        csrf = self.gate.csrf(session)
        if path == "/":
            return _html(views.overview(data.overview(), csrf, query.get("msg")))
        if path == "/api/overview":
            return _json(views.overview_json(data.overview()))
        if path == "/jobs":
            return self._jobs(data, query, csrf)
        match = _JOB.match(path) or re.match(r"^/api/jobs/(\d{1,18})$", path)
        if match:
            detail = data.job(int(match.group(1)))
            if detail is None:
                return Answer(HTTPStatus.NOT_FOUND, b"no such job\n")
            if path.startswith("/api/"):
                return _json(views.job_json(detail))
            return _html(views.job_page(detail, csrf, query.get("msg")))
        match = re.match(r"^/jobs/(\d{1,18})/picture\.svg$", path)
        if match:
            svg = data.picture(int(match.group(1)))
            if svg is None:
                return Answer(HTTPStatus.NOT_FOUND, b"no draft to draw\n")
            return Answer(HTTPStatus.OK, svg.encode(), "image/svg+xml",
                          headers={"Content-Security-Policy": FILE_CSP})
        match = _FILE.match(path)
        if match:
            found = data.output(int(match.group(1)), match.group(2))
            if found is None:
                return Answer(HTTPStatus.NOT_FOUND, b"no such output\n")
            kind = "image/svg+xml" if found.name.endswith(".svg") else (
                mimetypes.guess_type(found.name)[0] or "application/octet-stream")
            if kind.startswith("text/") or kind == "application/json":
                kind = f"{kind}; charset=utf-8" if kind.startswith("text/") else kind
            return Answer(HTTPStatus.OK, content_type=kind, file=found,
                          headers={"Content-Security-Policy": FILE_CSP})
        return Answer(HTTPStatus.NOT_FOUND, b"not found\n")

    def _jobs(self, data: DashboardData, query: Mapping[str, str], csrf: str) -> Answer:
        before = query.get("before", "")
        state = query.get("state") or None
        wanted = JobFilter(state=state if state in STATES else None, folder=query.get("folder") or None,
                           rule=query.get("rule") or None, search=query.get("q") or None,
                           since=_day(query.get("since", "")),
                           before=int(before) if before.isdigit() else None)
        config = data.config
        try:
            result = data.page_jobs(wanted)
        except FileNotFoundError:
            result = JobPage((), None)
        return _html(views.jobs_list(result, wanted, [w.key for w in config.watches],
                                     [r.name for r in config.rules], csrf))

    def _service(self, path: str) -> Answer:
        snapshot = self.status.snapshot(_now())
        if path == "/healthz":
            checks = health_checks(snapshot, self.health() if self.health else None)
            ok = all(checks.values())
            return _json({"ok": ok, "checks": checks}, HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)
        if path == "/metrics":
            return Answer(HTTPStatus.OK, metrics.render(snapshot).encode(), metrics.CONTENT_TYPE)
        return _json(to_json(snapshot))

    def post(self, path: str, form: Mapping[str, str]) -> Answer:
        """The answer to an allowed ``POST path`` whose CSRF token was checked."""
        data = self.data
        if data is None:
            return Answer(HTTPStatus.SERVICE_UNAVAILABLE, b"the daemon is starting\n")
        match = _ACTION.match(path)
        try:
            if match:
                job_id, action = int(match.group(1)), match.group(2)
                message = {"retry": data.retry, "cancel": data.cancel, "forget": data.forget}[action](job_id)
                log.info("dashboard_action", action=action, job=f"job-{job_id}")
                back = "/" if action == "forget" else f"/jobs/{job_id}"
                return _redirect(f"{back}?{_msg(message)}")
            if path in ("/folders/pause", "/folders/resume"):
                message = data.set_paused(form.get("folder", ""), paused=path.endswith("pause"))
                log.info("dashboard_action", action=path.rsplit("/", 1)[1], folder=form.get("folder"))
                return _redirect(f"/?{_msg(message)}")
            if path == "/explain":
                name = form.get("name", "")
                return _html(views.explained(name, data.explain(name), self.gate.csrf(form.get("_session"))))
        except NemodError as exc:
            return Answer(HTTPStatus.CONFLICT, f"{exc}\n".encode())
        return Answer(HTTPStatus.NOT_FOUND, b"not found\n")


def _day(text: str) -> float | None:
    """``YYYY-MM-DD`` (UTC midnight) as seconds since the epoch; None when not a date."""
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def _msg(message: str) -> str:
    return urlencode({"msg": message})


def _now() -> float:
    return time.time()


class _Handler(BaseHTTPRequestHandler):
    dashboard: DashboardServer
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

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def _get(self, *, head: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        session, _ = self._session()
        new_cookie = None
        if session is None:  # every browser gets a cookie: its CSRF tokens are derived from it
            session = new_cookie = secrets.token_urlsafe(32)
        gate = self.dashboard.gate
        if path in _STATIC:
            name, kind = _STATIC[path]
            body = resources.files("nemod.web").joinpath("static", name).read_bytes()
            self._guarded(lambda: Answer(HTTPStatus.OK, body, kind), head, new_cookie)
            return
        if path == "/login":
            self._guarded(lambda: _html(views.login(gate.csrf(session), "failed" in query)), head, new_cookie)
            return
        if path != "/healthz" and not gate.allowed(session, self._bearer()):
            if path.startswith("/api/") or path in ("/metrics", "/status.json"):
                self._guarded(lambda: Answer(HTTPStatus.UNAUTHORIZED, b"log in first\n"), head, new_cookie)
            else:
                self._guarded(lambda: _redirect("/login"), head, new_cookie)
            return
        self._guarded(lambda: self.dashboard.get(path, query, session or ""), head, new_cookie)

    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            self._guarded(lambda: Answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"form too large\n"))
            self.close_connection = True
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
                self._guarded(lambda: _redirect("/login?failed=1"))
            else:
                self._guarded(lambda: _redirect("/"), cookie=new)
            return
        if path == "/logout":
            gate.logout(session)
            self._guarded(lambda: _redirect("/login"), cookie=secrets.token_urlsafe(32))
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
