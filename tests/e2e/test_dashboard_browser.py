"""The dashboard in a real browser: Debian's Chromium (headless, via Selenium and Debian's
chromedriver) on a real ``nemod run`` watching real folders, over real HTTP on loopback.

One daemon and one browser serve the module (the cases follow one another as a person
would use the page). ``NEMOD_SCREENSHOTS=DIR`` also saves the overview and a job page.
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import missing_tool
from support.browser import DaemonProcess, browser_missing, chromium, wait_for

from nemod.samples import make_talk


@pytest.fixture(autouse=True)
def _tools_installed() -> None:
    if browser_missing() is not None:
        missing_tool(str(browser_missing()))

HOSTILE = "<img src=x onerror=alert(1)>.mp4"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A daemon with a dashboard on a free port, its folders and one browser."""
    root = tmp_path_factory.mktemp("dashboard")
    inbox, outbox = root / "inbox", root / "outbox"
    inbox.mkdir()
    config = root / "nemod.yaml"
    config.write_text(
        "state_dir: ./state\nsettle_seconds: 0.3\nstatus_port: 0\n"
        "watch:\n  - path: ./inbox\n    output: ./outbox\n"
        "rules:\n  - name: export\n    match: {glob: '*.mp4'}\n    edit: trim the pauses, export 720p\n"
        "    picture: svg\n",
        encoding="utf-8",
    )
    media = root / "media"
    talk = make_talk(media / "talk.mp4", width=480, height=270)  # 34.6 s of speech, 3 pauses
    daemon = DaemonProcess(config, root / "state", root / "daemon.log")
    url = daemon.start()
    try:
        with chromium(root / "profile") as driver:
            yield {"url": url, "driver": driver, "inbox": inbox, "outbox": outbox, "root": root,
                   "talk": talk, "daemon": daemon}
    finally:
        daemon.stop()


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def _api(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def _shot(driver: Any, name: str, size: tuple[int, int] = (1280, 900)) -> None:
    """With ``NEMOD_SCREENSHOTS=DIR``: save the page at ``size`` (CSS pixels) as DIR/name."""
    folder = os.environ.get("NEMOD_SCREENSHOTS")
    if folder:
        driver.set_window_size(*size)
        driver.save_screenshot(str(Path(folder) / name))
        driver.set_window_size(1280, 900)


def test_overview_loads_without_console_errors(site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    driver = site["driver"]
    driver.get(site["url"] + "/")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert "inbox" in driver.find_element(By.ID, "folders").text
    # The live update runs at least once (it is the page's only script).
    wait_for(lambda: driver.execute_script("return performance.getEntriesByName(location.origin + "
                                           "'/api/overview').length > 0"), timeout=10, what="a live update")
    assert _errors(driver) == []


def test_dropped_file_runs_live_and_lands_with_picture_and_player(site: dict[str, Any]) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver, url = site["driver"], site["url"]
    driver.get(url + "/")
    shutil.copy(site["talk"].path, site["inbox"] / HOSTILE)
    # It appears as running on the overview, without a reload, its name as text.
    row = wait_for(lambda: [r for r in driver.find_elements(By.CSS_SELECTOR, "#running tr")
                            if HOSTILE in r.text], timeout=30, what="the dropped file running")[0]
    assert driver.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    seen: set[str] = set()

    def progress_moved() -> bool:
        for cell in driver.find_elements(By.CSS_SELECTOR, "#running .pct"):
            seen.add(cell.text)
        return len(seen) >= 2

    wait_for(progress_moved, timeout=60, what="progress moving", step=0.2)
    _shot(driver, "dashboard-overview.png")
    _shot(driver, "dashboard-phone.png", (390, 844))
    del row
    driver.find_element(By.LINK_TEXT, HOSTILE).click()
    wait_for(lambda: driver.find_element(By.ID, "state").text == "done", timeout=90, what="the job done")
    facts = driver.find_element(By.CSS_SELECTOR, ".facts").text
    assert HOSTILE in facts
    assert driver.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.accept()
    picture = wait_for(lambda: driver.execute_script(
        "const i = document.getElementById('picture'); return i && i.complete && i.naturalWidth"),
        timeout=10, what="the picture of the edit")
    assert picture > 100
    svg_link = driver.find_element(By.CSS_SELECTOR, "a:has(> #picture)").get_attribute("href")
    with urllib.request.urlopen(svg_link, timeout=5) as answer:
        assert "3 cuts" in answer.read().decode()
    duration = wait_for(lambda: driver.execute_script(
        "const v = document.getElementById('player'); return v.readyState >= 1 && v.duration"),
        timeout=20, what="the player's metadata")
    assert 25.0 < duration < site["talk"].duration - 4.0  # the three pauses are gone
    played = driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; const v = document.getElementById('player');"
        "v.muted = true; v.play().then(() => setTimeout(() => done(v.currentTime), 700),"
        " e => done('refused: ' + e));")
    assert isinstance(played, float | int) and played > 0, played
    _shot(driver, "dashboard-job.png", (1100, 1900))
    assert _errors(driver) == []


def test_failed_file_shows_its_reason_and_retry_runs_it_again(site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    driver, url = site["driver"], site["url"]
    (site["inbox"] / "broken.mp4").write_bytes(b"not a video at all" * 100)
    job_id = wait_for(lambda: next((j["id"] for j in _api(url + "/api/overview")["failures"]
                                    if j["file"] == "broken.mp4"), None), timeout=30, what="the failure")
    driver.get(f"{url}/jobs/{job_id}")
    advice = driver.find_element(By.ID, "advice").text
    assert "could not be read as video" in advice
    assert "Errno" not in advice.split("details")[0]
    parked = site["inbox"] / "failed" / "broken.mp4"
    assert parked.is_file()
    before = _api(f"{url}/api/jobs/{job_id}")
    driver.find_element(By.CSS_SELECTOR, "form.retry button").click()
    assert "queued again" in wait_for(lambda: driver.find_element(By.ID, "flash").text, timeout=10,
                                      what="the retry message")
    # It ran again (from the inbox, where retry put it back) and failed again, later.
    after = wait_for(lambda: (a := _api(f"{url}/api/jobs/{job_id}"))["state"] == "failed"
                     and a["finished_at"] > before["finished_at"] and a, timeout=60, what="the second run")
    assert after["attempts"] == 1
    assert parked.is_file()
    assert _errors(driver) == []


def test_an_action_without_a_valid_csrf_token_is_refused(site: dict[str, Any]) -> None:
    driver, url = site["driver"], site["url"]
    (site["inbox"] / "refused.mp4").write_bytes(b"junk" * 10)
    job_id = wait_for(lambda: next((j["id"] for j in _api(url + "/api/overview")["failures"]
                                    if j["file"] == "refused.mp4"), None), timeout=30, what="the failure")
    driver.get(f"{url}/jobs/{job_id}")
    script = ("const done = arguments[arguments.length - 1];"
              "fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1])})"
              ".then(r => done(r.status), e => done(String(e)));")
    assert driver.execute_async_script(script, f"/jobs/{job_id}/retry", {}) == 403
    assert driver.execute_async_script(script, f"/jobs/{job_id}/retry", {"csrf": "0" * 64}) == 403
    # From outside the browser, with no cookie at all: refused too.
    request = urllib.request.Request(f"{url}/jobs/{job_id}/retry", data=b"csrf=x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    refused.value.close()
    assert refused.value.code == 403
    assert _api(f"{url}/api/jobs/{job_id}")["state"] == "failed"
    # The page's own button (with the token) works.
    token = driver.find_element("css selector", "form.retry input[name=csrf]").get_attribute("value")
    assert driver.execute_async_script(script, f"/jobs/{job_id}/retry", {"csrf": token}) == 200
    assert _errors(driver) == [] or all("403" in e["message"] for e in _errors(driver))
