"""The optional status endpoint (``status_port:``), on loopback only.

=================  ==============================================================
``GET /healthz``   200 ``{"ok": true, "checks": {…}}`` when every check passes
                   (the store answers, the watchers run, …), else 503 with the same body
``GET /metrics``   Prometheus text (:mod:`nemod.service.metrics`)
``GET /status.json``  the ``nemod status --json`` document
``GET /``          a small read-only HTML page for a person (refreshes every 10 s)
=================  ==============================================================

Nothing here changes state; every other method answers 405. The server binds
127.0.0.1 only: put a reverse proxy in front to expose it.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from nemod import __version__
from nemod.service import metrics
from nemod.service.status import STATES, StatusSnapshot, StatusSource, to_json

log = structlog.get_logger(__name__)

Health = Callable[[], Mapping[str, bool]]


def health_checks(snapshot: StatusSnapshot, live: Mapping[str, bool] | None) -> dict[str, bool]:
    """The checks ``/healthz`` judges: the store (from the snapshot) plus ``live`` checks
    from the daemon (or, without them, the daemon's last reported checks)."""
    checks = {"store": snapshot.store_ok}
    checks.update(live if live is not None else snapshot.daemon.health)
    return checks


class Serving:
    """A :class:`ThreadingHTTPServer` serving from one background thread (the status
    endpoint's and the dashboard's): :meth:`start` binds and serves, :meth:`close` stops
    and waits for the thread."""

    def __init__(self) -> None:
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], name: str) -> None:
        """Bind ``address`` and serve ``handler`` on the thread ``name``; raises OSError
        when the port is taken."""
        self.server = ThreadingHTTPServer(address, handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=name, daemon=True)
        self._thread.start()

    def port(self, default: int) -> int:
        """The bound port, or ``default`` before :meth:`start`."""
        return default if self.server is None else int(self.server.server_address[1])

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


class StatusServer:
    """Serves ``source`` on ``host:port`` from one background thread.

    ``health`` returns the daemon's live checks (e.g. ``{"watchers": True}``);
    ``clock`` gives wall-clock seconds for snapshots. Port 0 picks a free port
    (read :attr:`port` after :meth:`start`).
    """

    def __init__(
        self, source: StatusSource, *, port: int, host: str = "127.0.0.1",
        health: Health | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.health = health
        self.clock = clock
        self._address = (host, port)
        self._serving = Serving()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        return self._serving.port(self._address[1])

    def attach(self, daemon: Any) -> None:
        """Nothing: the read-only page needs only its source."""

    def start(self) -> None:
        """Bind and serve in a background thread; raises OSError when the port is taken."""
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._serving.start(self._address, Handler, "nemod-status-http")
        log.info("status_endpoint_started", url=f"http://{self._address[0]}:{self.port}/")

    def close(self) -> None:
        """Stop serving and wait for the thread."""
        self._serving.close()

    # --- answers (called by the handler) ----------------------------------------------

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        route = path.split("?", 1)[0]
        if route not in ("/", "/healthz", "/metrics", "/status.json"):
            return HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n"
        snapshot = self.source.snapshot(self.clock())
        if route == "/healthz":
            live = self.health() if self.health is not None else None
            checks = health_checks(snapshot, live)
            ok = all(checks.values())
            body = json.dumps({"ok": ok, "checks": checks}).encode()
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            return status, "application/json", body
        if route == "/metrics":
            return HTTPStatus.OK, metrics.CONTENT_TYPE, metrics.render(snapshot).encode()
        if route == "/status.json":
            return HTTPStatus.OK, "application/json", json.dumps(to_json(snapshot)).encode()
        return HTTPStatus.OK, "text/html; charset=utf-8", render_html(snapshot).encode()


class _Handler(BaseHTTPRequestHandler):
    server_owner: StatusServer
    server_version = f"nemod/{__version__}"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._respond(head=False)

    def do_HEAD(self) -> None:
        self._respond(head=True)

    def _respond(self, *, head: bool) -> None:
        try:
            status, content_type, body = self.server_owner.answer(self.path)
        except Exception as exc:  # the endpoint must answer, not drop the connection
            log.exception("status_endpoint_error", path=self.path)
            status, content_type = HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8"
            body = f"error: {type(exc).__name__}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _not_allowed(self) -> None:
        body = b"read-only endpoint\n"
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status_request", line=format % args)


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(snapshot: StatusSnapshot) -> str:
    """A small self-contained HTML page of ``snapshot`` (every value escaped)."""
    daemon = snapshot.daemon
    parts = [
        f"<p><b>Daemon:</b> {html.escape(daemon.detail)}</p>",
        f"<p><b>Status:</b> {html.escape(daemon.status or '-')}</p>",
        *([f"<p><b>Host:</b> {html.escape(snapshot.host_id)}</p>"] if snapshot.host_id else []),
        "<p><b>Jobs:</b> " + html.escape(
            ", ".join(f"{snapshot.counts.get(s, 0)} {s}" for s in STATES)) + "</p>",
    ]
    if not snapshot.store_ok:
        error = html.escape(snapshot.store_error or "")
        parts.append(f"<p class=bad>Store unreadable: {error}</p>")
    credits = daemon.credits or {}
    if credits.get("balance") is not None:
        parts.append(f"<p><b>Credits:</b> {html.escape(str(credits['balance']))}</p>")
    if snapshot.folders:
        parts.append("<h2>Folders</h2>" + _rows(
            ("folder", *STATES),
            [(f.folder, *(str(f.counts.get(s, 0)) for s in STATES)) for f in snapshot.folders],
        ))
    parts.append("<h2>Running</h2>" + (_rows(
        ("job", "file", "rule", "step", "progress", "host"),
        [(j.id, j.source, j.rule, j.step or "starting",
          "-" if j.progress is None else f"{j.progress * 100:.0f}%", j.host or "") for j in snapshot.running],
    ) if snapshot.running else "<p>nothing</p>"))
    parts.append("<h2>Queue</h2>" + (_rows(
        ("job", "file", "rule", "state", "not before", "why"),
        [(j.id, j.source, j.rule, j.state, _time(j.not_before), j.reason or "")
         for j in snapshot.queue],
    ) if snapshot.queue else "<p>empty</p>"))
    parts.append("<h2>Recent failures</h2>" + (_rows(
        ("job", "file", "rule", "when", "reason"),
        [(j.id, j.source, j.rule, _time(j.finished_at), j.reason or "") for j in snapshot.failures],
    ) if snapshot.failures else "<p>none</p>"))
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;"
        "text-align:left}th{background:#f3f3f3}.bad{color:#b00}"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="10"><title>nemod status</title>'
        f"<style>{style}</style></head><body><h1>nemod</h1>"
        + "".join(parts)
        + f"<p><small>taken {html.escape(_time(snapshot.taken_at))} · "
        '<a href="/metrics">metrics</a> · <a href="/status.json">json</a></small></p>'
        "</body></html>\n"
    )
