"""The shipped service files say what a trustworthy service must say."""

from __future__ import annotations

import plistlib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "nemod.service"
PLIST = ROOT / "systemd" / "com.nemod.daemon.plist"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd's ini dialect: repeated keys accumulate, ``#``/``;`` lines are comments."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        sections[section][key.strip()].append(value.strip())
    return sections


def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


def one(key: str) -> str:
    values = service()[key]
    assert values, f"{key}= missing"
    return values[-1]


def test_readiness_watchdog_and_restart() -> None:
    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("WatchdogSec").endswith("s")
    assert int(one("WatchdogSec").rstrip("s")) >= 30
    assert one("Restart") == "on-failure"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert "nemod run" in one("ExecStart")


def test_graceful_stop_matches_the_daemon() -> None:
    assert one("KillSignal") == "SIGTERM"
    assert one("KillMode") == "mixed"
    assert int(one("TimeoutStopSec").rstrip("s")) >= 60


def test_dedicated_user_and_managed_folders() -> None:
    assert one("User") == "nemod"
    assert one("StateDirectory") == "nemod"
    assert one("LogsDirectory") == "nemod"
    assert one("ConfigurationDirectory") == "nemod"


def test_sandboxing() -> None:
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    }
    for key, value in expected.items():
        assert one(key) == value, key
    assert set(one("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert "@system-service" in service()["SystemCallFilter"]
    assert service()["ReadWritePaths"], "ReadWritePaths= must name the watched/output folders"


def test_installable() -> None:
    assert parse_unit(UNIT.read_text())["Install"]["WantedBy"] == ["multi-user.target"]


def test_drop_in_example_and_sysusers() -> None:
    drop_in = parse_unit((ROOT / "systemd" / "nemod.service.d" / "local.conf.example").read_text())
    assert drop_in["Service"]["ReadWritePaths"]
    sysusers = (ROOT / "systemd" / "nemod.sysusers").read_text()
    assert any(line.split()[:2] == ["u", "nemod"] for line in sysusers.splitlines() if line.strip())


def test_launchd_plist() -> None:
    with PLIST.open("rb") as handle:
        plist = plistlib.load(handle)
    assert plist["Label"] == "com.nemod.daemon"
    assert plist["ProgramArguments"][1:3] == ["run", "--config"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}  # restart on failure only
    assert plist["ExitTimeOut"] == int(one("TimeoutStopSec").rstrip("s"))
    assert plist["StandardErrorPath"].endswith("nemod.log")
