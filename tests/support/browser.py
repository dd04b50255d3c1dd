"""A real browser and a real daemon for the dashboard tests.

:func:`chromium` starts Debian's Chromium headless through Debian's chromedriver with
Selenium: the driver path is given explicitly and Selenium Manager is switched off
(``SE_OFFLINE``), so nothing is ever downloaded. :class:`DaemonProcess` runs ``nemod run``
as a child process on a config in a temporary folder and finds the dashboard's port in the
daemon's beacon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Flags for a quiet, offline, throw-away browser (the profile is a fresh folder).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900", "--mute-audio",
)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} is not installed (apt-get install chromium chromium-driver; scripts/setup does)"
    return None


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A Selenium WebDriver on headless Chromium with a fresh profile in ``profile``;
    the browser's console log is readable with ``driver.get_log("browser")``."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver or browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, step: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something true (returned); AssertionError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(step)
    raise AssertionError(f"{what} not seen in {timeout} s (last: {last!r})")


class DaemonProcess:
    """``nemod run -c <config>`` as a child process; :meth:`stop` sends SIGTERM."""

    def __init__(self, config: Path, state_dir: Path, log: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> str:
        """Start the daemon and wait for its dashboard; returns its base URL."""
        nemod = shutil.which("nemod", path=str(Path(sys.executable).parent)) or "nemod"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([nemod, "run", "-c", str(self.config)], stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        beacon = self.state_dir / "daemon.json"

        def up() -> str | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"nemod run exited {self.process.returncode}: {self.log.read_text()}")
            port = json.loads(beacon.read_text()).get("status_port") if beacon.is_file() else None
            if not port:
                return None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return f"http://127.0.0.1:{port}"
            except urllib.error.HTTPError as exc:  # 503 until the first loop tick
                exc.close()
                return None

        self.url = wait_for(up, timeout=timeout, what="the dashboard of nemod run")
        return self.url

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)
