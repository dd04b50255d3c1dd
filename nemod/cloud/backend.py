"""The NemoVideo cloud backend: one job through the API, resumable after a crash.

The steps, each recorded in the job's ledger (``context.ledger``) so a resumed job
never pays twice::

    credits ─ session ─ upload ─ instruction (/run_sse) ─ state confirm ─ draft check
            ─ render start (render_<ts>) ─ status polling ─ download

Ledger keys (per session id ``<sid>``, so a replacement session starts clean). A row
never loses its remote id (the job store's rule), so every change of mind is a new
value or a new key, never an erasure:

``session``                 the session id (None: creation under way; ``lost:<sid>``: the
                            session is gone or its edit failed, make a new one)
``upload@<sid>``            the file is in that session
``baseline@<sid>#<n>``      digest of the timeline state before instruction attempt n
``instruction@<sid>#<n>``   None: sent, outcome unknown → never re-sent, the state is
                            polled; ``unsent``: refused by the service, so attempt n+1 may
                            send; ``done:<digest>``; ``failed``: no change after polling
``render@<sid>``            the render id, written *before* the start call (the id is
                            ours), so a restarted daemon resumes polling it
``render_retry@<sid>``      the one retry with a new id after a failed render is used up

Waits go through ``sleep`` (injected; tests pass one that does not sleep) or, by
default, the job's cancel event so a shutdown interrupts them.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

from nemod.backends.base import JobContext, JobRequest, Ledger, Rendition
from nemod.cloud.api import Balance, ClientPolicy, NemoClient, RenderStatus
from nemod.cloud.auth import TokenStore
from nemod.cloud.sse import AgentEvent, StreamResult
from nemod.config import ACCEPTED_EXTENSIONS, CLOUD_MAX_BYTES, CloudSettings
from nemod.draft import DraftError, from_draft
from nemod.errors import (
    BackendError,
    JobError,
    PermanentJobError,
    RetryableJobError,
    WaitingError,
)
from nemod.store.base import SideEffect
from nemod.timeline import summarize


@dataclass(frozen=True)
class JobPolicy:
    """The waits of one cloud job, in seconds (the reference's values by default).

    ``drop_first_wait``/``drop_interval``/``drop_unchanged_reads``: after a dropped stream,
    read the state after 30 s, then every 60 s; 5 unchanged reads = the edit failed.
    ``confirm_interval``/``confirm_reads``: after an edit, re-read the state until two
    reads agree (two-stage edits add BGM and a title after the raw edit).
    """

    poll_seconds: float = CloudSettings.poll_seconds
    max_polls: int = CloudSettings.max_polls
    drop_first_wait: float = 30.0
    drop_interval: float = 60.0
    drop_unchanged_reads: int = 5
    confirm_interval: float = 5.0
    confirm_reads: int = 6
    credits_recheck_seconds: float = 600.0
    retry_delay: float = 60.0
    rate_limit_delay: float = 30.0

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> JobPolicy:
        """The policy for ``settings`` (poll interval and limit from the config)."""
        return cls(poll_seconds=settings.poll_seconds, max_polls=settings.max_polls)


def state_digest(state: Mapping[str, Any]) -> str:
    """A short digest of what an edit changes (draft and generated media)."""
    relevant = {"draft": state.get("draft"), "generated_media": state.get("generated_media")}
    encoded = json.dumps(relevant, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:20]


def draft_ready(draft: object) -> bool:
    """True when ``draft.t`` has a track with at least one segment (export is possible)."""
    if not isinstance(draft, dict) or not isinstance(draft.get("t"), list):
        return False
    return any(isinstance(track, dict) and track.get("sg") for track in draft["t"])


def _session_id(ledger: Ledger) -> str | None:
    """The job's live session id, or None when there is none (yet, or any more)."""
    row = ledger.get("session")
    if row is None or not row.remote_id or row.remote_id.startswith("lost:"):
        return None
    return row.remote_id


def _lose_session(ledger: Ledger) -> None:
    """Mark the job's session as gone, so the next step creates a new one."""
    sid = _session_id(ledger)
    if sid is not None:
        ledger.record("session", f"lost:{sid}")


def _latest_instruction(ledger: Ledger, sid: str) -> tuple[int, SideEffect | None]:
    """The number and row of the last instruction attempt in session ``sid`` (0, None: none)."""
    attempt, row = 0, None
    while (following := ledger.get(f"instruction@{sid}#{attempt + 1}")) is not None:
        attempt, row = attempt + 1, following
    return attempt, row


def job_error(exc: BackendError, policy: JobPolicy) -> JobError:
    """The job error (and recovery) for an API error, per the reference's table."""
    code, status = exc.code, exc.status
    if code == 2001:
        return WaitingError(
            "out of NemoVideo credits; cloud jobs wait until credits return",
            reason="credits",
            delay=policy.credits_recheck_seconds,
        )
    if code == 1001:
        return PermanentJobError(str(exc))
    if code == 4001:
        accepted = ", ".join(sorted(ACCEPTED_EXTENSIONS))
        return PermanentJobError(f"NemoVideo does not accept this file type (accepted: {accepted}).")
    if code == 4002:
        limit = CLOUD_MAX_BYTES // 1_000_000
        return PermanentJobError(
            f"The file is larger than NemoVideo accepts ({limit} MB); trim or compress it first."
        )
    if status == 402:
        return PermanentJobError(
            "The NemoVideo plan cannot export (HTTP 402): a subscription matter, not credits."
        )
    if status == 403:
        return PermanentJobError(
            "The NemoVideo token lacks the scope this step needs (HTTP 403); retrying will not help."
        )
    if status == 400:
        return PermanentJobError(str(exc))
    if status == 429:
        return RetryableJobError(str(exc), delay=policy.rate_limit_delay)
    return RetryableJobError(str(exc), delay=policy.retry_delay)


class CloudBackend:
    """Edits and exports through a NemoVideo-compatible API (the service or ``nemod serve``).

    ``state_dir`` keeps the token and client id; ``transport`` (httpx) and ``sleep`` /
    ``clock`` are injected for tests; ``env`` replaces ``os.environ`` for NEMO_TOKEN and
    NEMO_CLIENT_ID.
    """

    name = "cloud"

    def __init__(
        self,
        settings: CloudSettings,
        state_dir: Path,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        env: Mapping[str, str] | None = None,
        client_policy: ClientPolicy | None = None,
        job_policy: JobPolicy | None = None,
        log: Any = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._sleep = sleep
        self.policy = job_policy or JobPolicy.from_settings(settings)
        self.tokens = TokenStore(
            state_dir, settings.api_url, env=env if env is not None else os.environ, now=clock
        )
        self.client = NemoClient(
            settings.api_url,
            self.tokens,
            transport=transport,
            sleep=sleep or time.sleep,
            policy=client_policy or ClientPolicy(stream_limit=settings.sse_timeout_seconds),
        )
        self.log = log if log is not None else structlog.get_logger("nemod.cloud")
        self._last_render_stamp = 0
        self._render_id_lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    def balance(self) -> Balance:
        """The account's credits (raises BackendError)."""
        return self.client.balance()

    # --- the job -----------------------------------------------------------------------

    def process(self, request: JobRequest, context: JobContext) -> Rendition:
        """Send ``request`` through the API; see :class:`nemod.backends.base.Backend`.

        Raises :class:`WaitingError` (reason ``credits``) below ``min_credits`` or on code
        2001, :class:`PermanentJobError` for what retrying cannot fix,
        :class:`RetryableJobError` for transient trouble (a later attempt resumes from the
        ledger), :class:`nemod.errors.LeaseLostError` from ``context.checkpoint``.
        """
        new_sessions = 0
        while True:
            try:
                return self._process_once(request, context)
            except BackendError as exc:
                if exc.code == 1002 and new_sessions < 2:
                    # The session is gone: a new one, re-upload, re-send (the old one
                    # cannot run anything any more, so this cannot double-charge).
                    self.log.warning("cloud_session_lost", job=request.job_id)
                    _lose_session(context.ledger)
                    new_sessions += 1
                    continue
                raise job_error(exc, self.policy) from None

    def _process_once(self, request: JobRequest, context: JobContext) -> Rendition:
        ledger = context.ledger
        sid = _session_id(ledger)
        if sid is None or not self._past_instruction(context, sid):
            self._check_credits(request)
        if sid is None:
            context.checkpoint("session")
            ledger.record("session", None)
            session = self.client.create_session(language=request.rule.session_language)
            sid = session.session_id
            ledger.record("session", sid)
            self.log.info("cloud_session_created", job=request.job_id, session=sid)
        if ledger.get(f"upload@{sid}") is None:
            context.checkpoint("upload")
            context.progress("upload", 0.0)
            self.client.upload(sid, request.source)
            ledger.record(f"upload@{sid}", request.source.name)
            context.progress("upload", 1.0)
        state, answer = self._edit(sid, request, context)
        draft = state.get("draft")
        if not draft_ready(draft):
            said = f" It said: {answer}" if answer else ""
            raise PermanentJobError(f"The NemoVideo service made no timeline to export.{said}")
        assert isinstance(draft, dict)
        try:
            timeline = from_draft(draft, strict=False)  # it is logged and summarised, not rendered here
        except DraftError as exc:
            raise PermanentJobError(f"The NemoVideo service returned a draft nemod cannot read: {exc}.") from exc
        render_id, status = self._render(sid, draft, request, context)
        video = self._download(render_id, status, request)
        return Rendition(
            video=video,
            timeline=timeline,
            summary=summarize(timeline),
            draft=draft,
            details={
                "cloud": {
                    "api_url": self.client.api_url,
                    "session_id": sid,
                    "render_id": render_id,
                    "answer": answer,
                }
            },
        )

    def _past_instruction(self, context: JobContext, sid: str) -> bool:
        _, row = _latest_instruction(context.ledger, sid)
        return row is not None and row.remote_id != "unsent"

    def _check_credits(self, request: JobRequest) -> None:
        needed = request.rule.min_credits
        if needed is None:
            needed = self.settings.min_credits
        balance = self.client.balance()
        self.log.info(
            "cloud_credits",
            available=balance.available,
            frozen=balance.frozen,
            total=balance.total,
            needed=needed,
        )
        if balance.available < needed:
            raise WaitingError(
                f"{balance.available} NemoVideo credits available, {needed} needed; "
                "the job waits for credits",
                reason="credits",
                delay=self.policy.credits_recheck_seconds,
            )

    # --- the instruction -----------------------------------------------------------------

    def _edit(self, sid: str, request: JobRequest, context: JobContext) -> tuple[dict[str, Any], str]:
        """Send the rule's instruction once; return the confirmed state and the text answer."""
        ledger = context.ledger
        attempt, row = _latest_instruction(ledger, sid)
        if row is not None and row.remote_id and row.remote_id.startswith("done:"):
            return self.client.state(sid), ""
        if row is not None and row.remote_id == "failed":
            _lose_session(ledger)
            raise RetryableJobError(
                "the previous edit did not change the timeline; starting a new session",
                delay=self.policy.retry_delay,
            )
        if row is None or row.remote_id == "unsent":
            attempt += 1
            key = f"instruction@{sid}#{attempt}"
            baseline = state_digest(self.client.state(sid))
            ledger.record(f"baseline@{sid}#{attempt}", baseline)
            context.checkpoint("edit")
            ledger.record(key, None)
            self.log.info("cloud_instruction_sent", job=request.job_id, session=sid)
            try:
                result = self.client.run_sse(sid, request.rule.instruction, on_event=self._on_event)
            except BackendError:
                ledger.record(key, "unsent")  # refused before it ran: safe to send later
                raise
        else:
            # Sent before a crash, outcome unknown: never re-send; read the state.
            key = f"instruction@{sid}#{attempt}"
            baseline_row = ledger.get(f"baseline@{sid}#{attempt}")
            baseline = baseline_row.remote_id if baseline_row and baseline_row.remote_id else ""
            result = StreamResult(ended="dropped")
            self.log.info("cloud_instruction_resumed", job=request.job_id, session=sid)
        context.progress("edit", 0.5)
        self.log.info(
            "cloud_stream_ended",
            job=request.job_id,
            ended=result.ended,
            text=result.has_text,
            calls=len(result.function_calls),
        )
        if result.ended == "closed" and result.has_text:
            state = self._settle(sid, context)
        else:
            first_wait = 0.0 if result.ended == "closed" else self.policy.drop_first_wait
            state = self._await_change(sid, baseline, first_wait, key, context)
        ledger.record(key, "done:" + state_digest(state))
        context.progress("edit", 1.0)
        return state, result.answer

    def _on_event(self, event: AgentEvent) -> None:
        if event.kind in ("function_call", "function_response", "error"):
            self.log.debug("cloud_event", kind=event.kind, name=event.name)

    def _await_change(
        self, sid: str, baseline: str, first_wait: float, key: str, context: JobContext
    ) -> dict[str, Any]:
        """Poll the state until it differs from ``baseline`` (then settle it); after
        ``drop_unchanged_reads`` unchanged reads the edit has failed."""
        waits = [first_wait] + [self.policy.drop_interval] * (self.policy.drop_unchanged_reads - 1)
        for wait in waits:
            self._wait(wait, context)
            state = self.client.state(sid)
            if state_digest(state) != baseline:
                return self._settle(sid, context, state)
        context.ledger.record(key, "failed")
        raise RetryableJobError(
            "the NemoVideo edit did not change the timeline "
            f"after {len(waits)} reads; it is treated as failed",
            delay=self.policy.retry_delay,
        )

    def _settle(self, sid: str, context: JobContext, state: dict[str, Any] | None = None) -> dict[str, Any]:
        """Re-read the state until two reads agree (a second stage may still be adding BGM
        and a title), at most ``confirm_reads`` times; return the last state."""
        current = state if state is not None else self.client.state(sid)
        for _ in range(self.policy.confirm_reads):
            self._wait(self.policy.confirm_interval, context)
            again = self.client.state(sid)
            if state_digest(again) == state_digest(current):
                return again
            current = again
        return current

    # --- the render ----------------------------------------------------------------------

    def _render(
        self, sid: str, draft: dict[str, Any], request: JobRequest, context: JobContext
    ) -> tuple[str, RenderStatus]:
        ledger = context.ledger
        key = f"render@{sid}"
        row = ledger.get(key)
        render_id = row.remote_id if row else None
        retried = ledger.get(f"render_retry@{sid}") is not None
        if render_id:
            self.log.info("cloud_render_resumed", job=request.job_id, render=render_id)
        while True:
            if not render_id:
                render_id = self._new_render_id()
                context.checkpoint("render")
                if ledger.get(key) is None:
                    ledger.record(key, None)  # the store's fenced "about to" record
                ledger.record(key, render_id)  # ours before the call: a crash still knows it
                self.client.start_render(render_id, sid, draft)
                self.log.info("cloud_render_started", job=request.job_id, render=render_id)
            status = self._poll(render_id, context)
            if status.status == "completed":
                return render_id, status
            if status.status == "unknown":
                render_id = None  # never reached the service: start it (cannot double-charge)
                continue
            if retried:
                reason = f": {status.message}" if status.message else ""
                raise PermanentJobError(f"The NemoVideo export failed twice{reason}.")
            self.log.warning("cloud_render_failed", job=request.job_id, render=render_id)
            retried = True
            ledger.record(f"render_retry@{sid}", render_id)
            render_id = None

    def _new_render_id(self) -> str:
        """A fresh ``render_<ms timestamp>``, strictly increasing across this backend's jobs
        (several workers may start renders in the same millisecond)."""
        with self._render_id_lock:
            stamp = max(int(self.clock() * 1000), self._last_render_stamp + 1)
            self._last_render_stamp = stamp
        return f"render_{stamp}"

    def _poll(self, render_id: str, context: JobContext) -> RenderStatus:
        for index in range(self.policy.max_polls):
            if index:
                self._wait(self.policy.poll_seconds, context)
            try:
                status = self.client.render_status(render_id)
            except BackendError as exc:
                if exc.status == 404:
                    return RenderStatus(render_id, "unknown")
                raise
            context.progress("render", min(0.99, (index + 1) / self.policy.max_polls))
            if status.status in ("completed", "failed"):
                return status
        raise RetryableJobError(
            f"the NemoVideo export {render_id} is still running after "
            f"{self.policy.max_polls} polls; polling resumes on the next attempt",
            delay=self.policy.poll_seconds,
        )

    def _download(self, render_id: str, status: RenderStatus, request: JobRequest) -> Path:
        request.work_dir.mkdir(parents=True, exist_ok=True)
        destination = request.work_dir / f"{request.stem}.render.mp4"
        if status.url:
            try:
                self.client.download(status.url, destination)
            except BackendError as exc:
                self.log.warning("cloud_download_fallback", render=render_id, error=str(exc))
            else:
                return destination
        self.client.download(f"/api/render/proxy/{render_id}/download", destination)
        return destination

    def _wait(self, seconds: float, context: JobContext) -> None:
        if seconds <= 0:
            return
        if self._sleep is not None:
            self._sleep(seconds)
        elif context.cancel.wait(seconds):
            raise RetryableJobError("cancelled while waiting for NemoVideo; the job resumes later", delay=0)
        if context.cancel.is_set():
            raise RetryableJobError("cancelled while waiting for NemoVideo; the job resumes later", delay=0)
