"""The service behind ``nemod serve``: accounts, tokens, sessions, edits and renders.

No HTTP here (that is :mod:`nemod.serve.server`); every method is thread-safe and
raises :class:`ApiError` with the NemoVideo code / HTTP status the client should see.
Edits and renders run the local engine in background threads, so an edit finishes
even when its SSE connection drops, and a render goes pending → processing → completed
while clients poll.

Files: each session owns ``data_dir/sessions/<session id>/`` (ids are made here, never
taken from a request); uploaded names are reduced to a safe base name; renders read
only files registered in their own session.
"""

from __future__ import annotations

import copy
import re
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nemod import languages
from nemod.config import ACCEPTED_EXTENSIONS, CLOUD_MAX_BYTES, VIDEO_EXTENSIONS
from nemod.draft import DraftError, from_draft, to_draft
from nemod.edits import Captions, EditParseError, Plan, parse_edit
from nemod.engine.local import LocalEngine
from nemod.errors import NemodError
from nemod.serve.faults import Faults
from nemod.timeline import Timeline, summarize

_RENDER_ID = re.compile(r"^render_[A-Za-z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class ApiError(Exception):
    """An error answer: envelope ``code`` (0 when only the HTTP ``status`` signals it)."""

    def __init__(self, message: str, code: int = 0, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class ServeSettings:
    """How ``nemod serve`` behaves. Times in seconds, sizes in bytes."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8765
    balance: int = 100
    edit_cost: int = 50
    max_upload_bytes: int = CLOUD_MAX_BYTES
    heartbeat_seconds: float = 5.0
    slow_heartbeat_seconds: float = 30.0
    second_stage_seconds: float = 1.0
    render_queue_seconds: float = 0.0
    slow_min_heartbeats: int = 2
    token_lifetime_seconds: float = 7 * 24 * 3600
    static_tokens: tuple[str, ...] = ()
    admin_token: str | None = None
    anonymous_scopes: tuple[str, ...] = ("read", "write", "upload", "render")


@dataclass
class Account:
    """Credits of one client (anonymous client id, or a static token)."""

    client_id: str
    available: int
    frozen: int = 0


@dataclass
class TokenInfo:
    """An issued token: its account, expiry and scopes."""

    account: Account
    expires_at: float
    scopes: frozenset[str]


@dataclass
class Edit:
    """One instruction being carried out; ``done`` is set when the state is updated."""

    text: str
    done: threading.Event = field(default_factory=threading.Event)
    answer: str = ""
    tool: str = "edit_timeline"


@dataclass
class Render:
    """One export: pending → processing → completed / failed."""

    render_id: str
    session_id: str
    #: The draft as the client sent it, and the timeline read from it (what is rendered).
    draft: dict[str, Any]
    timeline: Timeline
    status: str = "pending"
    message: str = ""
    video: Path | None = None
    url_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    history: list[str] = field(default_factory=lambda: ["pending"])

    def set_status(self, status: str, message: str = "") -> None:
        """Move to ``status`` (kept in ``history`` so tests can check the sequence)."""
        self.message = message
        self.status = status
        self.history.append(status)


@dataclass
class ServerSession:
    """A session: its folder, uploaded media (safe name → path) and timeline state."""

    session_id: str
    task_id: str
    account: Account
    folder: Path
    media: dict[str, Path] = field(default_factory=dict)
    video_infos: list[dict[str, Any]] = field(default_factory=list)
    draft: dict[str, Any] = field(default_factory=dict)
    generated_media: list[dict[str, Any]] = field(default_factory=list)
    instructions: int = 0
    renders_started: int = 0
    busy: threading.Lock = field(default_factory=threading.Lock)
    render_lock: threading.Lock = field(default_factory=threading.Lock)
    #: The caption language the session was created with (``nemod.languages.canonical``);
    #: None: English, unchecked.
    language: str | None = None


def safe_file_name(name: str) -> str:
    """Reduce an uploaded file name to a safe base name (no folders, no dot files).

    Raises :class:`ApiError` 4001 when its type is not accepted.
    """
    base = re.split(r"[/\\]", name)[-1]
    base = _UNSAFE.sub("_", base).lstrip("._")[-100:]
    extension = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    if not base or extension not in ACCEPTED_EXTENSIONS:
        raise ApiError(
            f"unsupported file type; accepted: {', '.join(sorted(ACCEPTED_EXTENSIONS))}", code=4001
        )
    return base


class Service:
    """Everything ``nemod serve`` knows; ``clock`` is wall-clock seconds."""

    def __init__(
        self,
        settings: ServeSettings,
        engine: LocalEngine,
        faults: Faults,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.faults = faults
        self.clock = clock
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, TokenInfo] = {}
        self._client_tokens: dict[str, str] = {}
        self._sessions: dict[str, ServerSession] = {}
        self._renders: dict[str, Render] = {}
        self._threads: list[threading.Thread] = []
        #: Instructions accepted (and run, and charged) per session id.
        self.instruction_counts: dict[str, int] = {}
        #: Instructions received per session id, including refused ones (e.g. code 2001).
        self.received_counts: dict[str, int] = {}
        #: Seconds of engine work done: {"kind": "edit"|"render", "session", "seconds"}.
        self.work: list[dict[str, Any]] = []
        self.render_counts: dict[str, int] = {}
        self.sessions_dir = settings.data_dir / "sessions"
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        static = Account("static", settings.balance)
        for token in settings.static_tokens:
            self._tokens[token] = TokenInfo(static, float("inf"), frozenset({"*"}))

    # --- tokens and accounts --------------------------------------------------------------

    def anonymous_token(self, client_id: str) -> tuple[str, int]:
        """Issue (or return the still valid) token of ``client_id``; → (token, credits)."""
        if not client_id.strip():
            raise ApiError("missing X-Client-Id", status=400)
        with self._lock:
            account = self._accounts.setdefault(client_id, Account(client_id, self.settings.balance))
            existing = self._client_tokens.get(client_id)
            info = self._tokens.get(existing) if existing else None
            if existing and info and info.expires_at > self.clock():
                return existing, account.available
            token = "nmv_usr_" + secrets.token_hex(20)
            self._tokens[token] = TokenInfo(
                account,
                self.clock() + self.settings.token_lifetime_seconds,
                frozenset(self.settings.anonymous_scopes),
            )
            self._client_tokens[client_id] = token
            return token, account.available

    def authenticate(self, token: str, path: str, scope: str) -> TokenInfo:
        """The token's info; raises 1001 for an unknown/expired token, 403 without ``scope``."""
        with self._lock:
            info = self._tokens.get(token)
            if info is not None and self.faults.take("expire_token", path):
                info.expires_at = min(info.expires_at, self.clock() - 1)
            if info is None or info.expires_at <= self.clock():
                raise ApiError("token invalid or expired", code=1001, status=401)
            if "*" not in info.scopes and scope not in info.scopes:
                raise ApiError(f"token lacks the {scope!r} scope", status=403)
            return info

    def balance(self, account: Account) -> dict[str, int]:
        """The account's credits."""
        with self._lock:
            available = 0 if self.faults.active("no_credits") else account.available
            return {
                "available": available,
                "frozen": account.frozen,
                "total": available + account.frozen,
            }

    def set_balance(self, available: int) -> None:
        """Give every account (and new ones) ``available`` credits (admin)."""
        with self._lock:
            for account in self._accounts.values():
                account.available = available
            for info in self._tokens.values():
                info.account.available = available

    # --- sessions ------------------------------------------------------------------------

    def create_session(self, account: Account, language: str = "") -> ServerSession:
        """A new session with its own folder; ``language`` (the request's, as the NemoVideo
        API takes it: a code or ``auto``) is what its captions are written in when an
        instruction names none. Empty, ``en`` or unknown: English."""
        session_id = uuid.uuid4().hex
        folder = self.sessions_dir / session_id
        (folder / "media").mkdir(parents=True)
        try:
            caption_language: str | None = languages.canonical(language) if language else None
        except ValueError:
            caption_language = None
        session = ServerSession(session_id, "task_" + uuid.uuid4().hex[:16], account, folder,
                                language=None if caption_language == languages.ENGLISH else caption_language)
        with self._lock:
            self._sessions[session_id] = session
            self.instruction_counts[session_id] = 0
            self.render_counts[session_id] = 0
        return session

    def session(self, session_id: str, account: Account, path: str) -> ServerSession:
        """The caller's session ``session_id``; raises 1002 when unknown or not theirs."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and self.faults.take("forget_session", path):
                del self._sessions[session_id]
                session = None
            if session is None or session.account is not account:
                raise ApiError("session not found", code=1002, status=404)
            return session

    def media_target(self, session: ServerSession, file_name: str) -> Path:
        """Where an upload called ``file_name`` goes in ``session`` (a fresh safe name)."""
        safe = safe_file_name(file_name)
        stem, extension = safe.rsplit(".", 1)
        candidate, index = safe, 1
        with self._lock:
            while candidate in session.media:
                index += 1
                candidate = f"{stem}-{index}.{extension}"
            session.media[candidate] = session.folder / "media" / candidate
            return session.media[candidate]

    def media_done(self, session: ServerSession, path: Path) -> dict[str, Any]:
        """Register a completed upload; returns its info for ``video_infos``."""
        info: dict[str, Any] = {"name": path.name, "size": path.stat().st_size}
        with self._lock:
            session.video_infos.append(info)
        return info

    def media_failed(self, session: ServerSession, path: Path) -> None:
        """Forget an upload that did not complete and delete what was written."""
        path.unlink(missing_ok=True)
        with self._lock:
            session.media.pop(path.name, None)

    def state(self, session: ServerSession) -> dict[str, Any]:
        """The session's timeline state."""
        with self._lock:
            draft = copy.deepcopy(session.draft)
            canvas = draft.get("m", {}).get("canvas", {}) if draft else {}
            return {
                "draft": draft,
                "video_infos": list(session.video_infos),
                "canvas_config": canvas,
                "generated_media": list(session.generated_media),
            }

    # --- edits ---------------------------------------------------------------------------

    def start_edit(self, session: ServerSession, text: str) -> Edit:
        """Accept an instruction (freezing its cost) and carry it out in the background.

        Raises 2001 when the account cannot pay for it.
        """
        cost = self.settings.edit_cost
        with self._lock:
            self.received_counts[session.session_id] = self.received_counts.get(session.session_id, 0) + 1
            account = session.account
            if self.faults.active("no_credits") or account.available < cost:
                raise ApiError("out of credits", code=2001)
            self.instruction_counts[session.session_id] = (
                self.instruction_counts.get(session.session_id, 0) + 1
            )
            session.instructions += 1
            account.available -= cost
            account.frozen += cost
        edit = Edit(text)
        self._spawn(f"nemod-serve-edit-{session.session_id[:8]}", self._run_edit, session, edit, cost)
        return edit

    def _run_edit(self, session: ServerSession, edit: Edit, cost: int) -> None:
        charged = False
        started = time.monotonic()
        try:
            with session.busy:
                charged = self._apply_edit(session, edit)
                self._log_work("edit", session, started)
        except Exception as exc:  # noqa: BLE001 - any engine failure is the edit's answer
            edit.answer = f"I encountered a problem editing the video: {type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                session.account.frozen -= cost
                if not charged:
                    session.account.available += cost
            edit.done.set()
        if charged and self.faults.take("second_stage"):
            if self.stopping.wait(self.settings.second_stage_seconds):
                return
            with self._lock:
                session.draft.setdefault("m", {})["second_stage"] = {"bgm": "none", "title": None}
                session.generated_media.append({"kind": "stage", "name": "second stage"})

    def _apply_edit(self, session: ServerSession, edit: Edit) -> bool:
        try:
            plan = parse_edit(edit.text)
        except EditParseError as exc:
            edit.answer = f"I can't do that here: {exc}. Nothing was changed."
            return False
        captions: Captions | None = plan.find(Captions)
        if captions is not None and captions.language is None and session.language is not None:
            plan = Plan(tuple(replace(op, language=session.language) if op is captions else op
                              for op in plan.operations))
        videos = [
            path
            for name, path in session.media.items()
            if name.rsplit(".", 1)[-1].lower() in VIDEO_EXTENSIONS and path.is_file()
        ]
        if not videos:
            edit.answer = "Please upload a video first, then tell me what to do with it."
            return False
        try:
            timeline = self.engine.plan_timeline(videos[0], plan, cancel=self.stopping)
        except NemodError as exc:
            edit.answer = f"I couldn't edit that video: {exc}"
            return False
        with self._lock:
            session.draft = to_draft(timeline)
        edit.answer = (
            f"Done! {summarize(timeline)}. Preview it in the timeline, then click the Export "
            "button to render your video."
        )
        return True

    # --- renders -------------------------------------------------------------------------

    def start_render(self, session: ServerSession, render_id: str, draft: object) -> Render:
        """Queue an export of ``draft`` (one at a time per session); idempotent per id."""
        if not _RENDER_ID.fullmatch(render_id):
            raise ApiError("render id must look like render_<ts>", status=400)
        try:
            timeline = from_draft(draft)
        except DraftError as exc:
            raise ApiError(f"the draft cannot be rendered: {exc}", status=400) from exc
        assert isinstance(draft, dict)  # from_draft refuses anything else
        for track in draft.get("t", []):
            segments = track.get("sg")
            for segment in segments if isinstance(segments, list) else []:
                source = segment.get("src") if isinstance(segment, dict) else None
                if source is not None and (not isinstance(source, str) or source not in session.media):
                    raise ApiError(f"the draft refers to a file not in this session: {source!r:.80}", status=400)
        if timeline.video is None:
            raise ApiError("the draft has no video track with segments", status=400)
        with self._lock:
            existing = self._renders.get(render_id)
            if existing is not None:
                if existing.session_id != session.session_id:
                    raise ApiError("render id already used", status=409)
                return existing
            render = Render(render_id, session.session_id, copy.deepcopy(draft), timeline)
            self._renders[render_id] = render
            self.render_counts[session.session_id] = self.render_counts.get(session.session_id, 0) + 1
            session.renders_started += 1
        self._spawn(f"nemod-serve-render-{render_id}", self._run_render, session, render)
        return render

    def render(self, render_id: str, account: Account) -> Render:
        """The caller's render ``render_id``; raises 404 when unknown."""
        with self._lock:
            render = self._renders.get(render_id)
            session = self._sessions.get(render.session_id) if render else None
            if render is None or (session is not None and session.account is not account):
                raise ApiError("render not found", status=404)
            return render

    def render_by_key(self, render_id: str, key: str) -> Render:
        """The render behind an ``output.url`` (its unguessable key is the permission)."""
        with self._lock:
            render = self._renders.get(render_id)
        if render is None or not secrets.compare_digest(render.url_key, key):
            raise ApiError("not found", status=404)
        return render

    def _run_render(self, session: ServerSession, render: Render) -> None:
        if self.stopping.wait(self.settings.render_queue_seconds):
            render.set_status("failed", "server stopping")
            return
        with session.render_lock:
            if self.stopping.is_set():
                render.set_status("failed", "server stopping")
                return
            render.set_status("processing")
            started = time.monotonic()
            work = session.folder / "renders" / render.render_id
            work.mkdir(parents=True, exist_ok=True)
            try:
                result = self.engine.render(
                    render.timeline, dict(session.media), work, render.render_id, cancel=self.stopping
                )
            except Exception as exc:  # noqa: BLE001 - a failed render is a status, not a crash
                render.set_status("failed", f"render failed: {type(exc).__name__}")
                return
            if self.faults.take("fail_render"):
                render.set_status("failed", "render failed (injected fault)")
                return
            render.video = result.video
            self._log_work("render", session, started)
            render.set_status("completed")

    def _log_work(self, kind: str, session: ServerSession, started: float) -> None:
        seconds = time.monotonic() - started
        with self._lock:
            self.work.append({"kind": kind, "session": session.session_id, "seconds": seconds})

    # --- threads -------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop background work (cancels ffmpeg) and wait for it."""
        self.stopping.set()
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def remove_data(self) -> None:
        """Delete every session folder (for a temporary data dir)."""
        shutil.rmtree(self.sessions_dir, ignore_errors=True)
