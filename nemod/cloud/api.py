"""A typed client for the NemoVideo API (see ``nemovideo-api.md``), over httpx.

Every call carries the bearer token and the attribution headers. Answers are
unwrapped from the ``{"code": 0, "data": {...}}`` envelope; anything else becomes a
:class:`nemod.errors.BackendError` carrying the envelope ``code`` or the HTTP
``status``. Two recoveries happen here because they are the same for every call:

* code 1001 (token invalid/expired): an anonymous token is re-acquired with the
  same client id and the call repeated once; a configured ``NEMO_TOKEN`` cannot
  be renewed, so the error goes up with a clear message;
* HTTP 429: wait ``policy.rate_limit_wait`` (30 s) and retry once.

Idempotent calls (reads, uploads) are also retried on 5xx answers and connection
errors with ``policy.backoff``; calls that cost credits (``run_sse``) or start work
(render) are never repeated here. The transport and ``sleep`` are injected: tests
use ``httpx.MockTransport`` or a loopback server and a sleep that does not sleep.

The token never appears in a URL, a log line or an error message.
"""

from __future__ import annotations

import mimetypes
import platform
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_sse import EventSource

from nemod import __version__
from nemod.cloud.auth import Token, TokenStore
from nemod.cloud.sse import AgentEvent, StreamResult, decode
from nemod.config import CloudSettings
from nemod.errors import BackendError

Sleep = Callable[[float], None]

#: Remote ids that may be put into a URL path (session ids, render ids).
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(frozen=True)
class ClientPolicy:
    """Waits and timeouts of the client, in seconds (tests shrink them).

    ``heartbeat_gap``: longest silence on an SSE stream before it counts as dropped;
    ``heartbeat_only_limit``: how long a stream may carry only heartbeats (10 min);
    ``stream_limit``: the whole stream's limit (15 min).
    """

    rate_limit_wait: float = 30.0
    backoff: tuple[float, ...] = (2.0, 10.0, 30.0)
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    upload_timeout: float = 600.0
    heartbeat_gap: float = 120.0
    heartbeat_only_limit: float = 600.0
    stream_limit: float = CloudSettings.sse_timeout_seconds


@dataclass(frozen=True)
class Balance:
    """Credits: ``available`` to spend, ``frozen`` (reserved by running work), ``total``."""

    available: int
    frozen: int
    total: int


@dataclass(frozen=True)
class Session:
    """A NemoVideo editing session."""

    session_id: str
    task_id: str


@dataclass(frozen=True)
class RenderStatus:
    """An export's status: pending, processing, completed, failed (or unknown)."""

    render_id: str
    status: str
    url: str | None = None
    message: str = ""


def safe_id(value: object, what: str) -> str:
    """Return ``value`` as an id that is safe in a URL path; raise BackendError otherwise."""
    text = str(value or "")
    if not _SAFE_ID.fullmatch(text):
        raise BackendError(f"the service answered an unusable {what}")
    return text


def attribution_headers() -> dict[str, str]:
    """The attribution headers the service requires on every request (402 without them)."""
    return {
        "X-Skill-Source": "nemod",
        "X-Skill-Version": __version__,
        "X-Skill-Platform": f"nemod-{platform.system().lower() or 'unknown'}",
        "User-Agent": f"nemod/{__version__}",
    }


_CODE_MESSAGES = {
    1001: "the NemoVideo token is invalid or expired",
    1002: "the NemoVideo session was not found",
    2001: "out of NemoVideo credits",
    4001: "the NemoVideo service does not accept this file type",
    4002: "the file is too large for the NemoVideo service",
}
_STATUS_MESSAGES = {
    400: "the request was refused (HTTP 400)",
    402: "the NemoVideo plan cannot export (HTTP 402)",
    403: "the NemoVideo token lacks the permission for this (HTTP 403)",
    404: "not found (HTTP 404)",
    429: "rate limited by the NemoVideo service (HTTP 429)",
}


class NemoClient:
    """The NemoVideo API for one base URL and one token store.

    Thread-safe for the token; one instance may serve several jobs.
    """

    def __init__(
        self,
        api_url: str,
        tokens: TokenStore,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        policy: ClientPolicy | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self.sleep = sleep
        self.monotonic = monotonic
        self.policy = policy or ClientPolicy()
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._http = httpx.Client(
            base_url=self.api_url,
            transport=transport,
            headers=attribution_headers(),
            timeout=httpx.Timeout(self.policy.read_timeout, connect=self.policy.connect_timeout),
            follow_redirects=False,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> NemoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- token ------------------------------------------------------------------------

    def acquire_anonymous_token(self) -> Token:
        """POST /api/auth/anonymous-token with the persisted client id; store the token."""
        response = self._send(
            "POST",
            "/api/auth/anonymous-token",
            authenticated=False,
            idempotent=False,
            headers={"X-Client-Id": self.tokens.client_id()},
        )
        data = _data(response)
        value = data.get("token")
        if not isinstance(value, str) or not value:
            raise BackendError("the service answered no token")
        return self.tokens.save(value)

    def _bearer(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self.tokens.current() or self.acquire_anonymous_token()
            return self._token.value

    def _token_rejected(self, used: str | None) -> None:
        """Handle code 1001 for the token ``used``: forget it (or stop for a configured one).

        When another thread already replaced it, the new token is simply used.
        """
        with self._lock:
            current = self._token or self.tokens.current()
            if current is not None and used is not None and current.value != used:
                return
            if current is not None and current.configured:
                raise BackendError(
                    "the configured NEMO_TOKEN was rejected as invalid or expired (code 1001); "
                    "set a valid token or unset NEMO_TOKEN to use an anonymous one",
                    code=1001,
                )
            self.tokens.forget()
            self._token = None

    # --- transport with the shared recoveries --------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        authenticated: bool = True,
        json: Any = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one request with the shared recoveries; return a successful response.

        With ``stream`` the successful response is left open for the caller to read and
        close. Raises :class:`BackendError` for every error answer.
        """
        rate_limited = token_renewed = False
        attempt = 0
        while True:
            request_headers = {"X-Client-Id": self.tokens.client_id(), **(headers or {})}
            used = self._bearer() if authenticated else None
            if used is not None:
                request_headers["Authorization"] = f"Bearer {used}"
            request = self._http.build_request(
                method,
                path,
                json=json,
                files=files,
                headers=request_headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if idempotent and attempt < len(self.policy.backoff):
                    self.sleep(self.policy.backoff[attempt])
                    attempt += 1
                    continue
                raise BackendError(
                    f"cannot reach the NemoVideo API at {urlsplit(self.api_url).netloc} "
                    f"({type(exc).__name__})"
                ) from exc
            if stream and _is_event_stream(response) and response.status_code == 200:
                return response
            if stream:
                response.read()
                response.close()
            status = response.status_code
            code, message = _problem(response)
            if status == 429 or code == 429:
                if not rate_limited:
                    rate_limited = True
                    self.sleep(self.policy.rate_limit_wait)
                    continue
                raise BackendError(_STATUS_MESSAGES[429], status=429)
            if status >= 500:
                if idempotent and attempt < len(self.policy.backoff):
                    self.sleep(self.policy.backoff[attempt])
                    attempt += 1
                    continue
                raise BackendError(f"the NemoVideo service failed (HTTP {status})", status=status)
            if code == 1001 and authenticated and not token_renewed:
                self._token_rejected(used)
                token_renewed = True
                continue
            if code:
                text = _CODE_MESSAGES.get(code, f"the NemoVideo service answered code {code}")
                raise BackendError(f"{text}{_detail(message)}", code=code, status=status)
            if status >= 400:
                text = _STATUS_MESSAGES.get(status, f"the NemoVideo service answered HTTP {status}")
                raise BackendError(f"{text}{_detail(message)}", status=status)
            return response

    def _data(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return _data(self._send(method, path, **kwargs))

    # --- the endpoints -------------------------------------------------------------------

    def balance(self) -> Balance:
        """GET /api/credits/balance/simple."""
        data = self._data("GET", "/api/credits/balance/simple", idempotent=True)
        return Balance(
            available=int(data.get("available", 0)),
            frozen=int(data.get("frozen", 0)),
            total=int(data.get("total", 0)),
        )

    def create_session(self, language: str = "en") -> Session:
        """POST /api/tasks/me/with-session/nemo_agent."""
        data = self._data(
            "POST",
            "/api/tasks/me/with-session/nemo_agent",
            idempotent=False,
            json={"task_name": "project", "language": language},
        )
        return Session(safe_id(data.get("session_id"), "session id"), str(data.get("task_id", "")))

    def upload(self, session_id: str, path: Path) -> dict[str, Any]:
        """POST /api/upload-video/nemo_agent/me/<sid> (multipart field ``files``).

        The file is streamed in 64 KiB chunks with a Content-Length taken from its
        size: it is never read into memory.
        """
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        timeout = httpx.Timeout(self.policy.upload_timeout, connect=self.policy.connect_timeout)
        with path.open("rb") as handle:
            return self._data(
                "POST",
                f"/api/upload-video/nemo_agent/me/{safe_id(session_id, 'session id')}",
                idempotent=True,
                files={"files": (path.name, handle, content_type)},
                timeout=timeout,
            )

    def state(self, session_id: str) -> dict[str, Any]:
        """GET /api/state/nemo_agent/me/<sid>/latest → ``data.state`` (draft, video_infos…)."""
        data = self._data(
            "GET",
            f"/api/state/nemo_agent/me/{safe_id(session_id, 'session id')}/latest",
            idempotent=True,
        )
        state = data.get("state")
        return state if isinstance(state, dict) else {}

    def run_sse(
        self,
        session_id: str,
        text: str,
        *,
        on_event: Callable[[AgentEvent], None] | None = None,
    ) -> StreamResult:
        """POST /run_sse and read the ADK event stream to its end.

        Raises :class:`BackendError` when the service refused the instruction (it did not
        run). Once the stream has started the instruction is running: a broken or silent
        connection is reported as ``ended="dropped"`` and never retried here.
        """
        body = {
            "app_name": "nemo_agent",
            "user_id": "me",
            "session_id": safe_id(session_id, "session id"),
            "new_message": {"parts": [{"text": text}]},
        }
        timeout = httpx.Timeout(
            self.policy.read_timeout,
            connect=self.policy.connect_timeout,
            read=self.policy.heartbeat_gap,
        )
        try:
            response = self._send(
                "POST",
                "/run_sse",
                idempotent=False,
                json=body,
                stream=True,
                timeout=timeout,
                headers={"Accept": "text/event-stream"},
            )
        except BackendError as exc:
            cause = exc.__cause__
            if isinstance(cause, httpx.TransportError) and not isinstance(
                cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
            ):
                # The request went out but no answer came back: it may be running.
                return StreamResult(ended="dropped")
            raise
        result = StreamResult()
        started = last_meaningful = self.monotonic()
        try:
            for sse in EventSource(response).iter_sse():
                for event in decode(sse.event, sse.data):
                    result.add(event)
                    if on_event is not None:
                        on_event(event)
                    if event.kind not in ("heartbeat", "empty"):
                        last_meaningful = self.monotonic()
                now = self.monotonic()
                if (
                    now - last_meaningful > self.policy.heartbeat_only_limit
                    or now - started > self.policy.stream_limit
                ):
                    result.ended = "timeout"
                    break
        except httpx.TransportError:
            result.ended = "dropped"
        finally:
            response.close()
        return result

    def start_render(self, render_id: str, session_id: str, draft: dict[str, Any]) -> None:
        """POST /api/render/proxy/lambda with our ``render_<ts>`` id (camelCase ``sessionId``)."""
        self._send(
            "POST",
            "/api/render/proxy/lambda",
            idempotent=False,
            json={
                "id": safe_id(render_id, "render id"),
                "sessionId": safe_id(session_id, "session id"),
                "draft": draft,
                "output": {"format": "mp4", "quality": "high"},
            },
        )

    def render_status(self, render_id: str) -> RenderStatus:
        """GET /api/render/proxy/lambda/<id>: the top-level ``status`` (or ``data.status``)."""
        response = self._send(
            "GET", f"/api/render/proxy/lambda/{safe_id(render_id, 'render id')}", idempotent=True
        )
        body = _json(response)
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
        status = str(body.get("status") or data.get("status") or "unknown").lower()
        output = body.get("output") or data.get("output") or {}
        url = output.get("url") if isinstance(output, dict) else None
        message = str(body.get("message") or data.get("message") or body.get("error") or "")
        return RenderStatus(render_id, status, url if isinstance(url, str) and url else None, message)

    def download(self, url_or_path: str, destination: Path) -> int:
        """Stream an export to ``destination``; returns the bytes written.

        The token is sent only to the API's own host, never to a storage URL elsewhere.
        Raises :class:`BackendError` on any failure (the partial file is removed).
        """
        target = urlsplit(url_or_path)
        same_origin = not target.netloc or target.netloc == urlsplit(self.api_url).netloc
        headers = {"Authorization": f"Bearer {self._bearer()}"} if same_origin else {}
        written = 0
        try:
            with self._http.stream(
                "GET",
                url_or_path,
                headers=headers,
                timeout=httpx.Timeout(self.policy.upload_timeout, connect=self.policy.connect_timeout),
            ) as response:
                _require_ok(response)
                with destination.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                        written += len(chunk)
        except httpx.TransportError as exc:
            destination.unlink(missing_ok=True)
            raise BackendError(f"the export download broke off ({type(exc).__name__})") from exc
        except BackendError:
            destination.unlink(missing_ok=True)
            raise
        return written

    def claim_token(self, task_id: str, session_id: str) -> str:
        """POST /api/auth/claim-token → ``clm_…`` for a browser claim link."""
        data = self._data(
            "POST",
            "/api/auth/claim-token",
            idempotent=False,
            json={"task_id": task_id, "session_id": session_id},
        )
        return str(data.get("claim_token", ""))


def _is_event_stream(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


def _require_ok(response: httpx.Response) -> None:
    if response.status_code != 200:
        raise BackendError(
            f"the export download failed (HTTP {response.status_code})",
            status=response.status_code,
        )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise BackendError(
            f"the NemoVideo service answered something that is not JSON (HTTP {response.status_code})",
            status=response.status_code,
        ) from exc
    if not isinstance(body, dict):
        raise BackendError("the NemoVideo service answered an unexpected JSON value")
    return body


def _data(response: httpx.Response) -> dict[str, Any]:
    data = _json(response).get("data")
    return data if isinstance(data, dict) else {}


def _problem(response: httpx.Response) -> tuple[int, str]:
    """The envelope ``code`` and message of an answer (0, "" when there is none)."""
    try:
        body = response.json()
    except ValueError:
        return 0, ""
    if not isinstance(body, dict):
        return 0, ""
    try:
        code = int(body.get("code") or 0)
    except (TypeError, ValueError):
        code = 0
    message = body.get("message") or body.get("msg") or ""
    return code, str(message)[:300]


def _detail(message: str) -> str:
    return f": {message}" if message else ""
