"""Token and client id persistence (state_dir, mode 0600, 7-day expiry, NEMO_* overrides)."""

from __future__ import annotations

import stat
from pathlib import Path

from support.clocks import ManualClock

from nemod.cloud.auth import TOKEN_LIFETIME_SECONDS, TokenStore


def test_client_id_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = TokenStore(tmp_path, "http://a", env={}).client_id()
    again = TokenStore(tmp_path, "http://a", env={}).client_id()
    assert first == again and len(first) == 36
    assert stat.S_IMODE((tmp_path / "cloud" / "client_id").stat().st_mode) == 0o600


def test_configured_client_id_wins(tmp_path: Path) -> None:
    assert TokenStore(tmp_path, "http://a", env={"NEMO_CLIENT_ID": "mine"}).client_id() == "mine"
    assert not (tmp_path / "cloud" / "client_id").exists()


def test_token_is_kept_private_and_expires_after_seven_days(tmp_path: Path) -> None:
    clock = ManualClock(1000.0)
    store = TokenStore(tmp_path, "http://a/", env={}, now=clock)
    assert store.current() is None
    store.save("nmv_usr_x")
    assert stat.S_IMODE(store.token_file.stat().st_mode) == 0o600
    current = store.current()
    assert current is not None and current.value == "nmv_usr_x" and not current.configured
    assert "nmv_usr_x" not in repr(current) and "nmv_usr_x" not in str(current)
    clock.now += TOKEN_LIFETIME_SECONDS - 1
    assert store.current() is not None
    clock.now += 1
    assert store.current() is None


def test_tokens_are_per_api_url_and_forgettable(tmp_path: Path) -> None:
    one = TokenStore(tmp_path, "http://one", env={})
    two = TokenStore(tmp_path, "http://two", env={})
    one.save("t1")
    assert two.current() is None
    two.save("t2")
    one.forget()
    assert one.current() is None
    assert two.current() is not None


def test_configured_token_wins_and_is_never_stored(tmp_path: Path) -> None:
    store = TokenStore(tmp_path, "http://a", env={"NEMO_TOKEN": "nmv_configured"})
    current = store.current()
    assert current is not None and current.configured and current.value == "nmv_configured"
    assert not store.token_file.exists()
