"""``store:`` and ``host_id:`` in the config: the default, the PostgreSQL URL with a
password from the environment (never shown), and bad values."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from nemod.config import load
from nemod.errors import ConfigError


def write(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "in").mkdir(exist_ok=True)
    path = tmp_path / "nemod.yaml"
    path.write_text(f"{extra}watch:\n  - path: in\n    output: out\nrules:\n  - name: r\n")
    return path


def test_without_store_the_sqlite_file_in_state_dir(tmp_path: Path) -> None:
    config = load(write(tmp_path, ""))
    assert config.store is None
    assert config.store_name == str(tmp_path / "state" / "jobs.sqlite3")
    short = socket.gethostname().split(".")[0]
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", short):
        assert config.host_id == short


def test_postgres_url_with_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEMOD_DB_PASSWORD", "s3cret-pw")
    config = load(write(tmp_path, "store: postgresql://nemod:${NEMOD_DB_PASSWORD}@db.lan:5432/nemod\nhost_id: rig-1\n"))
    assert config.store == "postgresql://nemod:s3cret-pw@db.lan:5432/nemod"
    assert config.store_name == "postgresql://nemod:***@db.lan:5432/nemod"
    assert config.host_id == "rig-1"
    assert "s3cret-pw" not in repr(config)


def test_bad_store_and_host_id_are_reported_without_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, "store: mysql://u:hunter2@db/x\nhost_id: 'not ok'\n"))
    text = "\n".join(str(problem) for problem in caught.value.problems)
    assert "store is a postgresql:// URL" in text and "hunter2" not in text
    assert "host_id: a host id is 1 to 64" in text


def test_cloud_jobs_on_a_shared_store_need_one_account(tmp_path: Path) -> None:
    from nemod.app import check_shared_account
    from nemod.errors import NemodError

    shared = load(write(tmp_path, "store: postgresql://nemod@db.lan/nemod\nbackend: cloud\n"))
    with pytest.raises(NemodError, match="set NEMO_TOKEN"):
        check_shared_account(shared, {})
    check_shared_account(shared, {"NEMO_TOKEN": "nmv_usr_x"})
    check_shared_account(load(write(tmp_path, "backend: cloud\n")), {})  # one host: anonymous is fine


def test_every_form_of_store_password_is_redacted() -> None:
    from nemod.store.base import redact_url

    assert redact_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("postgresql://u:p@ss@h/db") == "postgresql://u:***@h/db"  # libpq splits at the last @
    assert redact_url("postgresql://u@h/db?sslmode=require&password=secret") == (
        "postgresql://u@h/db?sslmode=require&password=***")
    assert redact_url("postgresql://u@h/db?PassFile=/x&sslpassword=k") == "postgresql://u@h/db?PassFile=***&sslpassword=***"
    assert redact_url("postgresql://h/db") == "postgresql://h/db"
