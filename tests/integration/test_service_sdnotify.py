"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nemod.service.sdnotify import SdNotifier, socket_address, status_line, watchdog_interval


class FakeSystemd:
    """Receives what systemd would: one datagram per sd_notify call."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5.0)

    def receive(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5.0)
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[FakeSystemd, str]]:
    # AF_UNIX paths are limited to ~108 bytes: keep the socket name short.
    path = str(tmp_path / "notify")
    if len(path) > 100:
        pytest.skip("temporary folder path too long for an AF_UNIX socket")
    fake = FakeSystemd(path)
    yield fake, path
    fake.close()


def test_ready_status_watchdog_stopping_reach_the_socket(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    notifier = SdNotifier.from_environment({"NOTIFY_SOCKET": path})
    try:
        assert notifier.enabled
        assert notifier.ready(status="idle; 0 queued")
        assert fake.receive() == {"READY": "1", "STATUS": "idle; 0 queued"}
        assert notifier.status("1 running (talk.mov render 45%); 2 queued")
        assert fake.receive() == {"STATUS": "1 running (talk.mov render 45%); 2 queued"}
        assert notifier.watchdog()
        assert fake.receive() == {"WATCHDOG": "1"}
        assert notifier.reloading(monotonic_usec=123)
        assert fake.receive() == {"RELOADING": "1", "MONOTONIC_USEC": "123"}
        assert notifier.reloading()
        usec = int(fake.receive()["MONOTONIC_USEC"])
        assert abs(usec - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 60_000_000
        assert notifier.stopping()
        message = fake.receive()
        assert message["STOPPING"] == "1"
        assert "stopping" in message["STATUS"]
    finally:
        notifier.close()


def test_unchanged_status_is_not_resent_and_newlines_are_flattened(
    systemd: tuple[FakeSystemd, str],
) -> None:
    fake, path = systemd
    notifier = SdNotifier(path)
    try:
        assert notifier.status("a\nb")
        assert fake.receive() == {"STATUS": "a b"}
        assert not notifier.status("a\nb")
        assert fake.nothing_pending()
    finally:
        notifier.close()


def test_keepalive_paced_by_watchdog_usec(systemd: tuple[FakeSystemd, str]) -> None:
    fake, path = systemd
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SdNotifier.from_environment(env)
    try:
        assert notifier.keepalive_every == 30.0
        assert notifier.keepalive(now=1000.0)
        assert fake.receive() == {"WATCHDOG": "1"}
        assert not notifier.keepalive(now=1029.9)
        assert fake.nothing_pending()
        assert notifier.keepalive(now=1030.0)
        assert fake.receive() == {"WATCHDOG": "1"}
    finally:
        notifier.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")
def test_abstract_namespace_socket() -> None:
    name = f"nemod-test-{os.getpid()}-{id(object())}"
    fake = FakeSystemd(b"\0" + name.encode())
    notifier = SdNotifier.from_environment({"NOTIFY_SOCKET": "@" + name})
    try:
        assert notifier.ready()
        assert fake.receive() == {"READY": "1"}
    finally:
        notifier.close()
        fake.close()


def test_no_socket_means_no_op() -> None:
    notifier = SdNotifier.from_environment({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.watchdog()
    assert not notifier.keepalive(now=0.0)
    assert not notifier.stopping()
    notifier.close()


def test_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = SdNotifier(str(tmp_path / "gone"))
    assert notifier.ready() is False
    assert notifier.watchdog() is False
    notifier.close()


def test_address_and_watchdog_parsing() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc") == b"\0abc"
    assert socket_address("") is None
    assert socket_address("vsock:2:1234") is None
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "2"}, pid=2) == 5.0


def test_status_line() -> None:
    assert status_line(queued=0) == "idle; 0 queued"
    line = status_line(
        queued=3,
        running=("talk.mov render 45%",),
        waiting=1,
        window="outside processing window until 22:00",
    )
    assert line == (
        "1 running (talk.mov render 45%); 3 queued; 1 waiting; "
        "outside processing window until 22:00"
    )
