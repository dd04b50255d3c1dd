"""Notifications over real loopback HTTP and a real command."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from nemod.config import NotifySettings
from nemod.service.notify import BackgroundNotifier, Notifier, job_fields


class Receiver:
    """A loopback webhook receiver: answers with the queued status codes (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, object]] = []
        self.headers: list[dict[str, str]] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                with receiver.arrived:
                    receiver.bodies.append(body)
                    receiver.headers.append(dict(self.headers))
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.bodies) >= count, timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_webhook_delivered_to_a_real_receiver(receiver: Receiver) -> None:
    notifier = Notifier(NotifySettings(webhooks=(receiver.url,)), sleep=lambda s: None)
    try:
        [result] = notifier.deliver(
            "done", job_fields(job_id="3", source="/in/a.mov", outputs=["/out/a.mp4"])
        )
    finally:
        notifier.close()
    assert result.ok
    assert receiver.bodies[0]["event"] == "done"
    assert receiver.bodies[0]["job"] == {
        "id": "3",
        "source": "/in/a.mov",
        "outputs": ["/out/a.mp4"],
    }
    assert receiver.headers[0]["X-Nemod-Event"] == "done"


def test_webhook_retried_until_the_receiver_accepts(receiver: Receiver) -> None:
    receiver.statuses = [502, 503]
    sleeps: list[float] = []
    notifier = Notifier(NotifySettings(webhooks=(receiver.url,)), sleep=sleeps.append)
    try:
        [result] = notifier.deliver("failed", job_fields(job_id="4", source="/in/b.mov", error="x"))
    finally:
        notifier.close()
    assert (result.ok, result.attempts) == (True, 3)
    assert len(receiver.bodies) == 3
    assert sleeps == [1.0, 2.0]


def test_unreachable_webhook_fails_after_retries() -> None:
    notifier = Notifier(
        NotifySettings(webhooks=("http://127.0.0.1:9/nothing-listens",)),
        sleep=lambda s: None,
        attempts=2,
        timeout=2.0,
    )
    try:
        [result] = notifier.deliver("done", {})
    finally:
        notifier.close()
    assert not result.ok
    assert result.attempts == 2
    assert "ConnectError" in result.detail


def test_background_notifier_delivers_and_stops_its_thread(receiver: Receiver) -> None:
    background = BackgroundNotifier(
        Notifier(NotifySettings(webhooks=(receiver.url,)), sleep=lambda s: None)
    )
    background.start()
    try:
        background.on_event("done", job_fields(job_id="1", source="/a"))
        background.on_event("failed", job_fields(job_id="2", source="/b", error="bad"))
        receiver.wait_for(2)
    finally:
        background.close()
    assert [body["event"] for body in receiver.bodies] == ["done", "failed"]
    assert not any(t.name == "nemod-notify" for t in threading.enumerate())


def test_command_runs_with_payload_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "data = json.load(sys.stdin)\n"
        "data['env'] = {k: v for k, v in os.environ.items() if k.startswith('NEMOD_')}\n"
        f"open({str(out)!r}, 'w').write(json.dumps(data))\n"
    )
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    notifier = Notifier(NotifySettings(command=command))
    try:
        [result] = notifier.deliver(
            "failed", job_fields(job_id="5", source="/in/c.mov", rule="talks", error="no audio")
        )
    finally:
        notifier.close()
    assert result.ok, result.detail
    data = json.loads(out.read_text())
    assert data["event"] == "failed"
    assert data["job"]["error"] == "no audio"
    assert data["env"]["NEMOD_EVENT"] == "failed"
    assert data["env"]["NEMOD_SOURCE"] == "/in/c.mov"
    assert data["env"]["NEMOD_RULE"] == "talks"


def test_failing_command_is_reported(tmp_path: Path) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(4)'"
    notifier = Notifier(NotifySettings(command=command))
    try:
        [result] = notifier.deliver("done", {})
    finally:
        notifier.close()
    assert not result.ok
    assert result.detail == "exit status 4"
