"""The dashboard: nemod's web page for the people who run it, served by the daemon.

=========================================  ==================================================
``GET /``                                  overview (live: ``/static/app.js`` polls ``/api/overview``)
``GET /jobs?q=&state=&folder=&rule=&since=&before=``  the jobs list, 50 a page (keyset on the id)
``GET /jobs/<id>``                         one job: facts, advice, actions, outputs, picture, player
``GET /jobs/<id>/files/<suffix>``          an output recorded in the store for that job (Range ok)
``GET /jobs/<id>/picture.svg``             the edit drawn from the job's log when none was published
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

import datetime as dt
import mimetypes
import re
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Protocol
from urllib.parse import urlencode

import structlog

from nemod.config import Config, is_loopback
from nemod.errors import ConfigError, NemodError, Problem, StoreError
from nemod.service import metrics
from nemod.service.http import Serving, health_checks
from nemod.service.status import STATES, StatusSource, to_json
from nemod.store.base import JobStore
from nemod.web import views
from nemod.web.auth import Gate
from nemod.web.data import DashboardData, JobFilter, JobPage
from nemod.web.handler import FILE_CSP, Answer, DashboardHandler, html_answer, json_answer, redirect

log = structlog.get_logger(__name__)

_JOB = re.compile(r"^/jobs/(\d{1,18})$")
_FILE = re.compile(r"^/jobs/(\d{1,18})/files/([A-Za-z0-9._-]{1,40})$")
_ACTION = re.compile(r"^/jobs/(\d{1,18})/(retry|cancel|forget)$")

class DaemonLike(Protocol):
    """What the dashboard uses of the running daemon."""

    config: Config
    store: JobStore

    def request_cancel(self, job_id: int) -> str:
        """See :meth:`nemod.daemon.Daemon.request_cancel`."""

    def live_progress(self) -> dict[int, tuple[str | None, float | None]]:
        """See :meth:`nemod.daemon.Daemon.live_progress`."""


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
        self._serving = Serving()

    def attach(self, daemon: DaemonLike) -> None:
        """Serve ``daemon``'s store, config (following reloads) and cancel requests."""
        self.data = DashboardData(lambda: daemon.config, daemon.store, self.status, controls=daemon)

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._serving.port(self._port)

    @property
    def url(self) -> str:
        """``http://host:port/``."""
        return f"http://{self.host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve in a background thread; raises OSError when the port is taken."""
        owner = self

        class Handler(DashboardHandler):
            dashboard = owner

        self._serving.start((self.host, self._port), Handler, "nemod-dashboard")
        log.info("dashboard_started", url=self.url, login=self.gate.required)

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        self._serving.close()

    # --- routing (called by the handler; every answer is built here) -------------------

    def get(self, path: str, query: Mapping[str, str], session: str) -> Answer:
        """The answer to ``GET path`` for an allowed request (pages get a "log out" button
        when a login is required)."""
        answer = self._get(path, query, session)
        if self.gate.required and answer.content_type.startswith("text/html"):
            answer.body = views.signed_in(answer.body.decode(), self.gate.csrf(session)).encode()
        return answer

    def _get(self, path: str, query: Mapping[str, str], session: str) -> Answer:
        if path in ("/healthz", "/metrics", "/status.json"):
            return self._service(path)
        data = self.data
        if data is None:
            return Answer(HTTPStatus.SERVICE_UNAVAILABLE, b"the daemon is starting\n")
        csrf = self.gate.csrf(session)
        if path == "/":
            return html_answer(views.overview(data.overview(), csrf, query.get("msg")))
        if path == "/api/overview":
            return json_answer(views.overview_json(data.overview()))
        if path == "/jobs":
            return self._jobs(data, query, csrf)
        match = _JOB.match(path) or re.match(r"^/api/jobs/(\d{1,18})$", path)
        if match:
            detail = data.job(int(match.group(1)))
            if detail is None:
                return Answer(HTTPStatus.NOT_FOUND, b"no such job\n")
            if path.startswith("/api/"):
                return json_answer(views.job_json(detail))
            return html_answer(views.job_page(detail, csrf, query.get("msg")))
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
        except StoreError as exc:  # e.g. PostgreSQL unreachable: one line, not a traceback
            return Answer(HTTPStatus.SERVICE_UNAVAILABLE, f"{exc}\n".encode())
        return html_answer(views.jobs_list(result, wanted, [w.key for w in config.watches],
                                     [r.name for r in config.rules], csrf))

    def _service(self, path: str) -> Answer:
        snapshot = self.status.snapshot(_now())
        if path == "/healthz":
            checks = health_checks(snapshot, self.health() if self.health else None)
            ok = all(checks.values())
            return json_answer({"ok": ok, "checks": checks}, HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)
        if path == "/metrics":
            return Answer(HTTPStatus.OK, metrics.render(snapshot).encode(), metrics.CONTENT_TYPE)
        return json_answer(to_json(snapshot))

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
                return redirect(f"{back}?{_msg(message)}")
            if path in ("/folders/pause", "/folders/resume"):
                message = data.set_paused(form.get("folder", ""), paused=path.endswith("pause"))
                log.info("dashboard_action", action=path.rsplit("/", 1)[1], folder=form.get("folder"))
                return redirect(f"/?{_msg(message)}")
            if path == "/explain":
                name = form.get("name", "")
                return html_answer(views.explained(name, data.explain(name), self.gate.csrf(form.get("_session"))))
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


