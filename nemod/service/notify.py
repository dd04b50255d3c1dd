"""Telling someone that a job finished, failed, or that cloud credits ran low.

``notify:`` in the config lists webhooks (each gets a JSON POST, retried) and/or a
command (run without a shell, the same JSON on stdin and the main fields in
``NEMOD_*`` environment variables). ``events:`` picks which events are sent.

The payload (one JSON object, UTF-8)::

    {
      "event": "done",                       # done | failed | credits_low
      "time": "2026-11-27T22:14:03Z",        # when the event happened (UTC)
      "host": "nas",                         # the machine nemod runs on
      "nemod_version": "0.1.0",
      "job": {                               # done and failed
        "id": "7f3c…",
        "source": "/srv/inbox/talk.mov",
        "rule": "talks",
        "folder": "/srv/inbox",              # the watch folder's id:, else its path
        "outputs": ["/srv/out/talk.mp4", "/srv/out/talk.srt"],   # done
        "summary": "cut 3 pauses, 12:04 → 10:51",                # done
        "error": "the file is not a video ffmpeg can read",      # failed: one line
        "error_code": "corrupt_media",                           # failed, may be null
        "attempts": 1,
        "duration_seconds": 93.4
      },
      "credits": {"balance": 12, "minimum": 50}                  # credits_low
    }

Keys without a value are left out. The command also gets ``NEMOD_EVENT``,
``NEMOD_JOB_ID``, ``NEMOD_SOURCE``, ``NEMOD_RULE``, ``NEMOD_OUTPUT`` (first output),
``NEMOD_ERROR`` and ``NEMOD_CREDITS`` when they apply.

Delivery never raises into the daemon: failures are logged (``notify_failed``).
:class:`Notifier` delivers synchronously (tests, one-off commands);
:class:`BackgroundNotifier` puts it on one thread so a slow webhook never delays a job.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from nemod import __version__
from nemod.config import NotifySettings

log = structlog.get_logger(__name__)

EVENTS = ("done", "failed", "credits_low")


class EventSink(Protocol):
    """What the daemon calls when something worth telling happens."""

    def on_event(self, name: str, payload: Mapping[str, Any]) -> None:
        """Report event ``name`` (one of :data:`EVENTS`) with its ``payload`` fields."""


class NullSink:
    """An event sink that drops everything (no ``notify:`` configured)."""

    def on_event(self, name: str, payload: Mapping[str, Any]) -> None:
        """Drop the event."""


@dataclass(frozen=True)
class Delivery:
    """The outcome of delivering one event to one target (``url`` or ``command``)."""

    target: str
    ok: bool
    attempts: int
    detail: str = ""


CommandRunner = Callable[[Sequence[str], bytes, Mapping[str, str], float], int]


def run_command(argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float) -> int:
    """Run ``argv`` with ``stdin`` and extra ``env``; returns its exit status.

    Raises OSError when it cannot start and subprocess.TimeoutExpired past ``timeout``.
    """
    completed = subprocess.run(
        list(argv),
        input=stdin,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if completed.returncode != 0 and completed.stderr:
        log.warning(
            "notify_command_stderr", stderr=completed.stderr.decode(errors="replace")[-500:]
        )
    return completed.returncode


def build_payload(
    name: str, fields: Mapping[str, Any], *, now: dt.datetime, host: str
) -> dict[str, Any]:
    """The JSON object sent for event ``name``: the envelope plus ``fields`` (None values
    dropped, also inside ``job``/``credits``)."""

    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: clean(item) for key, item in value.items() if item is not None}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        return value

    payload: dict[str, Any] = {
        "event": name,
        "time": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": host,
        "nemod_version": __version__,
    }
    payload.update(clean(dict(fields)))
    return payload


def command_environment(payload: Mapping[str, Any]) -> dict[str, str]:
    """The ``NEMOD_*`` variables for a notification command."""
    job: Mapping[str, Any] = payload.get("job") or {}
    credits: Mapping[str, Any] = payload.get("credits") or {}
    outputs = job.get("outputs") or []
    candidates = {
        "NEMOD_EVENT": payload.get("event"),
        "NEMOD_JOB_ID": job.get("id"),
        "NEMOD_SOURCE": job.get("source"),
        "NEMOD_RULE": job.get("rule"),
        "NEMOD_OUTPUT": outputs[0] if outputs else None,
        "NEMOD_ERROR": job.get("error"),
        "NEMOD_CREDITS": credits.get("balance"),
    }
    return {key: str(value) for key, value in candidates.items() if value is not None}


def _retryable_status(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


class Notifier:
    """Delivers events to the webhooks and command of :class:`NotifySettings`.

    ``client`` is the HTTP client (its transport is the seam for tests); ``sleep`` the
    pause between attempts (tests pass a no-op); ``clock`` gives the event time.
    A webhook is tried ``attempts`` times, waiting ``backoff * 2**n`` seconds between
    tries, on connection errors, timeouts, 408/425/429 and 5xx; other answers are final.
    """

    def __init__(
        self,
        settings: NotifySettings,
        *,
        client: httpx.Client | None = None,
        runner: CommandRunner = run_command,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        attempts: int = 4,
        backoff: float = 1.0,
        timeout: float = 10.0,
        command_timeout: float = 60.0,
        host: str | None = None,
    ) -> None:
        self.settings = settings
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self.runner = runner
        self.sleep = sleep
        self.clock = clock
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.command_timeout = command_timeout
        self.host = host or socket.gethostname()

    @property
    def active(self) -> bool:
        """True when there is somewhere to deliver to."""
        return bool(self.settings.webhooks or self.settings.command)

    def wants(self, name: str) -> bool:
        """True when event ``name`` is configured to be sent."""
        return self.active and name in self.settings.events

    def on_event(self, name: str, payload: Mapping[str, Any]) -> None:
        """Deliver event ``name`` now (see :meth:`deliver`); never raises."""
        self.deliver(name, payload)

    def deliver(self, name: str, fields: Mapping[str, Any]) -> list[Delivery]:
        """Send event ``name`` to every target; returns one :class:`Delivery` per target.

        Unknown or unselected events are skipped (empty list).
        """
        if not self.wants(name):
            return []
        payload = build_payload(name, fields, now=self.clock(), host=self.host)
        body = json.dumps(payload, ensure_ascii=False).encode()
        results = [self._post(url, name, body) for url in self.settings.webhooks]
        if self.settings.command:
            results.append(self._run(self.settings.command, body, payload))
        for result in results:
            if result.ok:
                log.info(
                    "notify_sent", notify_event=name, target=result.target, attempts=result.attempts
                )
            else:
                log.warning(
                    "notify_failed", notify_event=name, target=result.target,
                    attempts=result.attempts, error=result.detail,
                )
        return results

    def _post(self, url: str, name: str, body: bytes) -> Delivery:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"nemod/{__version__}",
            "X-Nemod-Event": name,
        }
        detail = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                detail = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return Delivery(url, True, attempt, f"HTTP {response.status_code}")
                detail = f"HTTP {response.status_code}"
                if not _retryable_status(response.status_code):
                    return Delivery(url, False, attempt, detail)
            if attempt < self.attempts:
                self.sleep(self.backoff * 2 ** (attempt - 1))
        return Delivery(url, False, self.attempts, detail)

    def _run(self, command: str, body: bytes, payload: Mapping[str, Any]) -> Delivery:
        try:
            argv = shlex.split(command)
            status = self.runner(argv, body, command_environment(payload), self.command_timeout)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return Delivery(command, False, 1, f"{type(exc).__name__}: {exc}")
        return Delivery(command, status == 0, 1, f"exit status {status}")

    def close(self) -> None:
        """Close the HTTP client if this notifier made it."""
        if self._own_client:
            self.client.close()


class BackgroundNotifier:
    """Runs a :class:`Notifier` on one thread: :meth:`on_event` only queues.

    Call :meth:`start` once and :meth:`close` at shutdown (it delivers what is queued,
    up to ``timeout`` seconds, then stops the thread).
    """

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the delivery thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="nemod-notify", daemon=True)
            self._thread.start()

    def on_event(self, name: str, payload: Mapping[str, Any]) -> None:
        """Queue event ``name`` for delivery (dropped when not selected)."""
        if self.notifier.wants(name):
            self._queue.put((name, dict(payload)))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:  # close() asked the thread to stop
                return
            name, payload = item
            try:
                self.notifier.deliver(name, payload)
            except Exception as exc:  # a notification must never kill the daemon
                log.exception("notify_crashed", error=f"{type(exc).__name__}: {exc}")

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (within ``timeout``), stop the thread, close the client."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        self.notifier.close()


def job_fields(
    *,
    job_id: str,
    source: str,
    rule: str | None = None,
    folder: str | None = None,
    outputs: Sequence[str] = (),
    summary: str | None = None,
    error: str | None = None,
    error_code: str | int | None = None,
    attempts: int | None = None,
    duration_seconds: float | None = None,
) -> dict[str, Any]:
    """The ``job`` part of a done/failed payload (pass to :meth:`Notifier.on_event`)."""
    return {
        "job": {
            "id": job_id,
            "source": source,
            "rule": rule,
            "folder": folder,
            "outputs": list(outputs) or None,
            "summary": summary,
            "error": error.splitlines()[0] if error else None,
            "error_code": error_code,
            "attempts": attempts,
            "duration_seconds": None if duration_seconds is None else round(duration_seconds, 1),
        }
    }


def credits_fields(balance: int, minimum: int) -> dict[str, Any]:
    """The ``credits`` part of a credits_low payload."""
    return {"credits": {"balance": balance, "minimum": minimum}}
