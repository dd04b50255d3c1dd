"""The token is a secret: it never reaches a log, a sidecar, an error message, a URL or
the job log, and its file is private (mode 0600)."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from support.logs import captured_logs
from support.serve import StrictLedger, make_backend, request, run_job

from nemod.backends.base import JobContext
from nemod.cli import main
from nemod.config import Config, Rule
from nemod.errors import NemodError
from nemod.pipeline import run_job as run_pipeline
from nemod.serve.server import NemoServer

STATIC = "nmv_usr_configured_secret_0123456789"


pytestmark = pytest.mark.serve(static_tokens=(STATIC,))


def _everything_written(folder: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in folder.rglob("*")
        if path.is_file() and path.suffix in (".json", ".txt", ".srt", ".vtt", ".log")
    )


def test_anonymous_token_never_leaks(
    server: NemoServer, clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = make_backend(server, tmp_path / "state")
    config = Config(path=tmp_path / "nemod.yaml", state_dir=tmp_path / "state", backend="cloud")
    rule = Rule(name="r", edit="export 720p MP4", min_credits=0)
    server.faults.arm("expire_token", 1, path="/api/state")  # a renewal happens on the way
    urls: list[str] = []
    real_send = backend.client._http.send

    def spy(request, **kwargs):  # type: ignore[no-untyped-def]
        urls.append(str(request.url))
        return real_send(request, **kwargs)

    backend.client._http.send = spy  # type: ignore[method-assign]
    with captured_logs() as events:
        try:
            outcome = run_pipeline(
                config, backend, clip, tmp_path / "out", job_id="secret1", rule=rule,
                context=JobContext(ledger=StrictLedger()),
            )
            server.faults.arm("fail_render", 2)
            with pytest.raises(NemodError) as failure:
                run_job(backend, request(clip, tmp_path / "work2"))
        finally:
            backend.close()
    tokens = [token for token in server.service._tokens if token != STATIC]
    assert len(tokens) == 2  # the first one expired and was replaced
    token_file = tmp_path / "state" / "cloud" / "token.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state" / "cloud" / "client_id").stat().st_mode) == 0o600
    captured = capsys.readouterr()
    haystack = "\n".join([
        json.dumps(events, default=str), caplog.text, captured.out, captured.err,
        str(failure.value), repr(failure.value), "\n".join(urls),
        _everything_written(tmp_path / "out"), repr(backend.tokens.current()),
    ])
    assert outcome.outputs and "render_" in haystack  # the haystack is real
    for token in tokens:
        assert token not in haystack


def test_configured_token_never_leaks(
    server: NemoServer, clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = make_backend(server, tmp_path / "state", env={"NEMO_TOKEN": STATIC})
    server.faults.arm("expire_token", 1)
    with captured_logs() as events:
        try:
            with pytest.raises(NemodError) as failure:
                run_job(backend, request(clip, tmp_path / "work"))
        finally:
            backend.close()
    haystack = "\n".join([json.dumps(events, default=str), caplog.text, str(failure.value)])
    assert "NEMO_TOKEN" in haystack
    assert STATIC not in haystack
    assert not (tmp_path / "state" / "cloud" / "token.json").exists()


def test_credits_command_prints_the_balance(
    server: NemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEMO_TOKEN", raising=False)
    monkeypatch.delenv("NEMO_CLIENT_ID", raising=False)
    config = tmp_path / "nemod.yaml"
    config.write_text(
        f"backend: cloud\nstate_dir: ./state\ncloud:\n  api_url: {server.url}\n"
        "rules:\n  - name: r\n    edit: export 720p MP4\n"
    )
    assert main(["credits", "-c", str(config)]) == 0
    assert main(["credits", "-c", str(config), "--json"]) == 0
    out = capsys.readouterr().out.splitlines()  # the in-process server logs here too
    assert [line for line in out if line.startswith("available 100, frozen 0, total 100")]
    assert next(json.loads(line) for line in out if line.startswith("{"))["available"] == 100
    for token in server.service._tokens:
        assert token not in "\n".join(out)
