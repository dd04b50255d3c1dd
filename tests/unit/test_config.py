"""Config loading: every problem at once, located by file, line and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nemod import config
from nemod.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "nemod.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir()
    return tmp_path


def problems_of(path: Path) -> list[str]:
    """Load ``path`` as a user would from its folder (so files are named as given) and
    return the problems reported."""
    with pytest.raises(ConfigError) as caught, pytest.MonkeyPatch.context() as patch:
        patch.chdir(path.parent)
        config.load(path.name)
    return [str(p) for p in caught.value.problems]


def test_valid_config_resolves_paths_relative_to_the_file(folders: Path) -> None:
    path = write(folders, """\
        state_dir: ./state
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - name: talking-head
            match: {glob: "*.mp4"}
            edit: "export 1080p MP4"
        """)
    loaded = config.load(path)
    assert loaded.state_dir == folders / "state"
    assert loaded.watches[0].path == folders / "inbox"
    assert loaded.watches[0].output == folders / "outbox"
    assert loaded.backend == "local"
    assert loaded.rules[0].match.globs == ("*.mp4",)
    assert loaded.rules[0].plan.export.height == 1080


def test_typo_bad_glob_and_missing_folder_are_all_reported_with_lines(folders: Path) -> None:
    path = write(folders, """\
        state_dir: ./state
        watch:
          - path: ./inbox
            output: ./outbox
          - path: ./nowhere
            output: ./outbox2
        rules:
          - name: talking-head
            match: {glob: "*.[mp4"}
            edit: "export 1080p MP4"
            outptu: "{stem}.mp4"
        """)
    found = problems_of(path)
    assert any(p.startswith("nemod.yaml:11 rules[0].outptu: unknown key 'outptu'") for p in found), found
    # The schema error stops before semantic checks, so fix the typo and look again.
    path.write_text(path.read_text().replace("outptu", "output"))
    found = problems_of(path)
    assert any("nemod.yaml:9 rules[0].match.glob: bad glob '*.[mp4'" in p for p in found), found
    assert any(p.startswith("nemod.yaml:5 watch[1].path: folder not found") for p in found), found
    assert len(found) == 2


def test_unknown_top_level_key_names_the_choices(folders: Path) -> None:
    path = write(folders, "backedn: local\nrules: [{name: a}]\n")
    (message,) = problems_of(path)
    assert message.startswith("nemod.yaml:1 backedn: unknown key 'backedn' (expected one of:")


def test_wrong_types_and_enums_are_located(folders: Path) -> None:
    path = write(folders, """\
        backend: clowd
        concurrency: "two"
        rules:
          - name: a
        """)
    found = problems_of(path)
    assert "nemod.yaml:1 backend: 'clowd' is not one of: local, cloud" in found
    assert any(p.startswith("nemod.yaml:2 concurrency:") for p in found)


def test_an_instruction_the_local_engine_does_not_understand_is_a_check_error(folders: Path) -> None:
    path = write(folders, """\
        rules:
          - name: a
            edit: "make it cinematic"
        """)
    (message,) = problems_of(path)
    assert message == "nemod.yaml:3 rules[0].edit: the local engine does not understand 'make it cinematic'"


def test_the_cloud_backend_takes_any_instruction(folders: Path) -> None:
    path = write(folders, """\
        backend: cloud
        rules:
          - name: a
            edit: "make it cinematic"
        """)
    assert config.load(path).rules[0].instruction == "make it cinematic"


def test_environment_variables_are_expanded(folders: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEMOD_TEST_OUT", "exports")
    path = write(folders, """\
        watch:
          - path: ./inbox
            output: ./${NEMOD_TEST_OUT}
        rules: [{name: a}]
        state_dir: ${NEMOD_TEST_UNSET:-./st}
        """)
    loaded = config.load(path)
    assert loaded.watches[0].output == folders / "exports"
    assert loaded.state_dir == folders / "st"


def test_an_unset_environment_variable_is_an_error(folders: Path) -> None:
    path = write(folders, "state_dir: ${NEMOD_SURELY_UNSET_VARIABLE}\nrules: [{name: a}]\n")
    (message,) = problems_of(path)
    assert message == "nemod.yaml:1 state_dir: environment variable ${NEMOD_SURELY_UNSET_VARIABLE} is not set"


@pytest.mark.parametrize("template", ["../{stem}.mp4", "/tmp/{stem}.mp4", "a/../../{stem}.mp4"])
def test_output_templates_cannot_escape_the_output_folder(folders: Path, template: str) -> None:
    path = write(folders, f'rules: [{{name: a, output: "{template}"}}]\n')
    (message,) = problems_of(path)
    assert "rules[0].output" in message
    assert "output folder" in message


def test_unknown_template_field(folders: Path) -> None:
    path = write(folders, 'rules: [{name: a, output: "{steam}.mp4"}]\n')
    (message,) = problems_of(path)
    assert "unknown field {steam}" in message


def test_rules_dir_files_are_validated_with_their_own_names(folders: Path) -> None:
    (folders / "rules").mkdir()
    write(folders / "rules", "name: good\nmatch: {extensions: [mov]}\n", "good.yaml")
    write(folders / "rules", "name: bad\nmatch: {extension: [mov]}\n", "bad.yaml")
    path = write(folders, "rules_dir: ./rules\n")
    (message,) = problems_of(path)
    assert message.startswith("rules/bad.yaml:2 match.extension: unknown key 'extension'")


def test_duplicate_rule_names(folders: Path) -> None:
    path = write(folders, "rules: [{name: a}, {name: a}]\n")
    (message,) = problems_of(path)
    assert "rule 'a' is defined twice" in message


def test_yaml_syntax_error_has_a_line(folders: Path) -> None:
    path = write(folders, "rules:\n  - name: a\n    match: {glob: [\n")
    (message,) = problems_of(path)
    assert message.startswith("nemod.yaml:")
    assert "YAML syntax error" in message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(1024, 1024), ("500MB", 500_000_000), ("1.5 GB", 1_500_000_000), ("2KiB", 2048), ("10", 10)],
)
def test_parse_size(text: int | str, expected: int) -> None:
    assert config.parse_size(text) == expected


def test_default_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEMOD_CONFIG", raising=False)
    assert config.default_config_path(None) == Path("nemod.yaml")
    monkeypatch.setenv("NEMOD_CONFIG", "/etc/nemod/nemod.yaml")
    assert config.default_config_path(None) == Path("/etc/nemod/nemod.yaml")
    assert config.default_config_path("x.yaml") == Path("x.yaml")


def test_watch_folder_id_names_the_folder_in_the_job_store(folders: Path) -> None:
    (folders / "second").mkdir()
    path = write(folders, """\
        watch:
          - path: ./inbox
            id: studio-share
            output: ./outbox
          - path: ./second
            output: ./outbox2
        rules:
          - name: all
        """)
    loaded = config.load(path)
    assert [w.key for w in loaded.watches] == ["studio-share", str(folders / "second")]
    assert loaded.locate("studio-share", "day 1/talk.mp4") == folders / "inbox" / "day 1" / "talk.mp4"
    assert loaded.locate(str(folders / "second"), "a.mp4") == folders / "second" / "a.mp4"
    assert loaded.locate("elsewhere", "a.mp4") is None


def test_watch_folder_ids_must_be_unique_and_plain(folders: Path) -> None:
    (folders / "second").mkdir()
    path = write(folders, """\
        watch:
          - path: ./inbox
            id: studio
            output: ./outbox
          - path: ./second
            id: studio
            output: ./outbox2
        rules:
          - name: all
        """)
    (problem,) = problems_of(path)
    assert "watch[1].id: another watch folder already uses 'studio'" in problem
    path.write_text(path.read_text().replace("id: studio\n    output: ./outbox2", "id: ../up\n    output: ./outbox2"))
    (problem,) = problems_of(path)
    assert "watch[1].id: a folder id is 1 to 64 letters, digits" in problem


def test_a_missing_background_music_file_is_a_check_error(folders: Path) -> None:
    path = write(folders, """\
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - name: with-music
            edit: "add BGM music/lofi.mp3 at 35%, export 1080p MP4"
          - name: structured
            operations:
              - {op: music, path: /nowhere/theme.mp3}
        """)
    problems = problems_of(path)
    assert len(problems) == 2
    assert "rules[0].edit: background music file not found: " in problems[0]
    assert problems[0].endswith(str(folders / "music" / "lofi.mp3"))
    assert "rules[1].operations: background music file not found: /nowhere/theme.mp3" in problems[1]
    (folders / "music").mkdir()
    (folders / "music" / "lofi.mp3").write_bytes(b"ID3")
    assert problems_of(path) == [problems[1]]
    assert config.load(path, check_folders=False).rules[1].name == "structured"  # nemod jobs, status


def test_schema_errors_do_not_hide_the_other_problems(folders: Path) -> None:
    path = write(folders, """\
        concurrency: "two"
        watch:
          - path: ./inbox
            output: ./outbox
            polling: sometimes
          - path: ./nowhere
            output: ./outbox2
        rules:
          - name: a
            match: {glob: 5}
            edit: "trim the pauses"
          - name: b
            match: {glob: "*.[mp4"}
            edit: "make it cinematic"
            outptu: x
        """)
    found = problems_of(path)
    assert any(p.startswith("nemod.yaml:1 concurrency:") for p in found), found
    assert any(p.startswith("nemod.yaml:5 watch[0].polling:") for p in found), found
    assert any(p.startswith("nemod.yaml:10 rules[0].match.glob:") for p in found), found
    assert any(p.startswith("nemod.yaml:6 watch[1].path: folder not found") for p in found), found
    assert any("rules[1].match.glob: bad glob" in p for p in found), found
    assert any("rules[1].edit: the local engine does not understand 'make it cinematic'" in p for p in found), found
    assert any("rules[1].outptu: unknown key" in p for p in found), found


def test_every_default_comes_from_its_dataclass(folders: Path) -> None:
    """A config that sets nothing optional gets exactly the dataclasses' defaults: load()
    writes none of its own (one home for each default)."""
    path = write(folders, """\
        watch:
          - path: ./inbox
            output: ./outbox
        rules:
          - name: a
            edit: "export 720p"
        """)
    loaded = config.load(path)
    assert loaded.engine == config.EngineSettings(base_dir=folders.resolve(), model_cache=loaded.state_dir / "models")
    assert loaded.notify == config.NotifySettings()
    cloud = config.CloudSettings()
    assert (loaded.cloud.min_credits, loaded.cloud.poll_seconds, loaded.cloud.max_polls) == (
        cloud.min_credits, cloud.poll_seconds, cloud.max_polls)
    for name in ("concurrency", "rescan_seconds", "max_attempts", "retention_days", "log_level", "settle_seconds"):
        assert getattr(loaded, name) == getattr(config.Config, name), name
    watch = loaded.watches[0]
    for name in ("recursive", "polling", "poll_interval", "ignore", "on_success", "on_failure", "id"):
        assert getattr(watch, name) == getattr(config.WatchFolder, name), name
    assert loaded.state_dir == folders.resolve() / "state"
