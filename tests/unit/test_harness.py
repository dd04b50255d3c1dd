"""The shared harness itself: the thread-leak check fails a test that leaves a thread behind."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT_CONFTEST = Path(__file__).parents[1] / "conftest.py"


def test_a_test_that_leaves_a_thread_running_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(ROOT_CONFTEST.read_text().replace("THREAD_GRACE_SECONDS = 5.0", "THREAD_GRACE_SECONDS = 0.2"))
    pytester.makepyfile(
        """
        import threading

        RELEASE = threading.Event()

        def test_leaks():
            threading.Thread(target=RELEASE.wait, name="forgotten-worker", daemon=True).start()

        def test_tidy():
            worker = threading.Thread(target=lambda: None, name="joined-worker")
            worker.start()
            worker.join()

        def test_release():
            RELEASE.set()
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.re_match_lines([r".*threads left running after the test: \['forgotten-worker'\]"])
