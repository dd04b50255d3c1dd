"""Notifications: payload, event selection, retries (no sleeping), command runner seam."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence

import httpx
import pytest

from nemod.config import NotifySettings
from nemod.service.notify import (
    Notifier,
    build_payload,
    command_environment,
    credits_fields,
    job_fields,
)

NOW = dt.datetime(2026, 11, 27, 22, 14, 3, tzinfo=dt.UTC)


def make(
    handler: httpx.MockTransport | None = None,
    *,
    settings: NotifySettings | None = None,
    runner: object = None,
    attempts: int = 4,
) -> tuple[Notifier, list[float]]:
    sleeps: list[float] = []
    kwargs: dict[str, object] = {}
    if runner is not None:
        kwargs["runner"] = runner
    notifier = Notifier(
        settings or NotifySettings(webhooks=("http://hooks.test/a",)),
        client=httpx.Client(
            transport=handler or httpx.MockTransport(lambda r: httpx.Response(200))
        ),
        sleep=sleeps.append,
        clock=lambda: NOW,
        host="nas",
        attempts=attempts,
        **kwargs,  # type: ignore[arg-type]
    )
    return notifier, sleeps


def test_payload_envelope_and_job_fields() -> None:
    fields = job_fields(
        job_id="7",
        source="/in/talk.mov",
        rule="talks",
        folder="/in",
        outputs=["/out/talk.mp4", "/out/talk.srt"],
        summary="cut 3 pauses",
        attempts=1,
        duration_seconds=93.44,
    )
    payload = build_payload("done", fields, now=NOW, host="nas")
    assert payload["event"] == "done"
    assert payload["time"] == "2026-11-27T22:14:03Z"
    assert payload["host"] == "nas"
    assert "nemod_version" in payload
    assert payload["job"] == {
        "id": "7",
        "source": "/in/talk.mov",
        "rule": "talks",
        "folder": "/in",
        "outputs": ["/out/talk.mp4", "/out/talk.srt"],
        "summary": "cut 3 pauses",
        "attempts": 1,
        "duration_seconds": 93.4,
    }


def test_failed_payload_keeps_first_line_of_error_only() -> None:
    fields = job_fields(
        job_id="8", source="/in/x.mov", error="corrupt file\ntraceback…", error_code=2001
    )
    payload = build_payload("failed", fields, now=NOW, host="nas")
    assert payload["job"]["error"] == "corrupt file"
    assert payload["job"]["error_code"] == 2001
    assert "outputs" not in payload["job"]


def test_command_environment() -> None:
    payload = build_payload("credits_low", credits_fields(12, 50), now=NOW, host="h")
    assert command_environment(payload) == {"NEMOD_EVENT": "credits_low", "NEMOD_CREDITS": "12"}
    payload = build_payload(
        "done", job_fields(job_id="1", source="/a", outputs=["/o.mp4"]), now=NOW, host="h"
    )
    env = command_environment(payload)
    assert env["NEMOD_OUTPUT"] == "/o.mp4"
    assert env["NEMOD_JOB_ID"] == "1"


def test_webhook_posts_json_once_on_success() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    notifier, sleeps = make(httpx.MockTransport(handler))
    results = notifier.deliver("done", job_fields(job_id="1", source="/in/a.mov"))
    assert [(r.ok, r.attempts) for r in results] == [(True, 1)]
    assert sleeps == []
    assert len(seen) == 1
    assert seen[0].method == "POST"
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].headers["x-nemod-event"] == "done"
    body = json.loads(seen[0].content)
    assert body["event"] == "done"
    assert body["job"]["source"] == "/in/a.mov"


def test_webhook_retries_5xx_and_connection_errors_with_backoff() -> None:
    answers: list[object] = [
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer

    notifier, sleeps = make(httpx.MockTransport(handler))
    results = notifier.deliver("failed", job_fields(job_id="1", source="/a"))
    assert [(r.ok, r.attempts) for r in results] == [(True, 3)]
    assert sleeps == [1.0, 2.0]


def test_webhook_gives_up_after_attempts() -> None:
    notifier, sleeps = make(httpx.MockTransport(lambda r: httpx.Response(500)), attempts=3)
    [result] = notifier.deliver("done", {})
    assert not result.ok
    assert result.attempts == 3
    assert result.detail == "HTTP 500"
    assert sleeps == [1.0, 2.0]


def test_webhook_client_error_is_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    notifier, sleeps = make(httpx.MockTransport(handler))
    [result] = notifier.deliver("done", {})
    assert (result.ok, result.attempts, result.detail) == (False, 1, "HTTP 404")
    assert calls == [1]
    assert sleeps == []


def test_events_not_selected_are_not_sent() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200)

    settings = NotifySettings(webhooks=("http://hooks.test/a",), events=("failed",))
    notifier, _ = make(httpx.MockTransport(handler), settings=settings)
    assert notifier.deliver("done", {}) == []
    notifier.on_event("done", {})
    assert calls == []
    assert len(notifier.deliver("failed", {})) == 1


def test_no_targets_means_inactive() -> None:
    notifier, _ = make(settings=NotifySettings())
    assert not notifier.active
    assert notifier.deliver("done", {}) == []


def test_command_gets_payload_on_stdin_and_env() -> None:
    calls: list[tuple[Sequence[str], bytes, Mapping[str, str], float]] = []

    def runner(argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float) -> int:
        calls.append((argv, stdin, env, timeout))
        return 0

    settings = NotifySettings(command="/usr/local/bin/tell-me --loud 'two words'")
    notifier, _ = make(settings=settings, runner=runner)
    [result] = notifier.deliver("failed", job_fields(job_id="9", source="/in/b.mov", error="boom"))
    assert result.ok
    argv, stdin, env, timeout = calls[0]
    assert list(argv) == ["/usr/local/bin/tell-me", "--loud", "two words"]
    assert json.loads(stdin)["job"]["error"] == "boom"
    assert env["NEMOD_EVENT"] == "failed"
    assert env["NEMOD_ERROR"] == "boom"
    assert timeout == 60.0


@pytest.mark.parametrize("outcome", ["exit", "oserror"])
def test_command_failure_is_reported_not_raised(outcome: str) -> None:
    def runner(argv: Sequence[str], stdin: bytes, env: Mapping[str, str], timeout: float) -> int:
        if outcome == "oserror":
            raise FileNotFoundError("no such program")
        return 3

    notifier, _ = make(settings=NotifySettings(command="nope"), runner=runner)
    [result] = notifier.deliver("done", {})
    assert not result.ok
    assert ("exit status 3" if outcome == "exit" else "FileNotFoundError") in result.detail
