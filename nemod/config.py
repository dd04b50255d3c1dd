"""Loading and validating nemod's YAML configuration.

One JSON Schema (:data:`SCHEMA`) is the single source of truth for what a config
file and a rule file may contain. :func:`load` reads the file, expands
``${ENV}`` references, validates everything at once and returns a frozen
:class:`Config`; every problem is reported together, each located as
``nemod.yaml:12 rules[0].match.glob: …`` (see :class:`nemod.errors.Problem`).

Paths in the config are resolved relative to the config file's folder.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jsonschema
import yaml

from nemod import languages
from nemod.edits import Captions, EditParseError, Music, Plan, parse_edit, plan_from_operations
from nemod.errors import ConfigError, Problem
from nemod.schedule import check as check_schedule
from nemod.store.base import SQLITE_NAME, redact_url

#: File types the NemoVideo service accepts (mission seed); the local engine takes the same.
VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "avi", "webm", "mkv"})
IMAGE_EXTENSIONS = frozenset({"jpg", "png", "gif", "webp"})
AUDIO_EXTENSIONS = frozenset({"mp3", "wav", "m4a", "aac"})
ACCEPTED_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS | AUDIO_EXTENSIONS
#: The cloud's largest accepted upload.
CLOUD_MAX_BYTES = 500 * 1000 * 1000

DEFAULT_API_URL = "https://mega-api-prod.nemovideo.ai"
#: Where the job database, logs and tokens live when ``state_dir`` is not given.
DEFAULT_STATE_DIR = "./state"
DEFAULT_NAME_TEMPLATE = "{stem}.mp4"


def _default_host_id() -> str:
    """The machine's short host name, made a valid host id."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0])[:64].lstrip("._-")
    return name or "localhost"


_SIZE = {"type": ["integer", "string"], "pattern": r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$"}
_STRINGS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}

_MATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "glob": _STRINGS,
        "extensions": {"type": "array", "items": {"type": "string"}},
        "min_size": _SIZE,
        "max_size": _SIZE,
    },
}

RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "match": _MATCH_SCHEMA,
        "edit": {"type": "string", "minLength": 1},
        "operations": {"type": "array", "items": {"type": "object", "required": ["op"]}},
        "output": {"type": "string", "minLength": 1},
        "language": {"type": "string", "minLength": 1},
        "min_credits": {"type": "integer", "minimum": 0},
        "schedule": {"type": "string"},
        "on_success": {"enum": ["leave", "delete", "move"]},
        "on_failure": {"enum": ["leave", "move"]},
        "picture": {"enum": ["none", "svg"]},
    },
}

#: ``nemod password`` output: ``scrypt$<n>$<r>$<p>$<salt hex>$<key hex>`` (see nemod.web.auth).
PASSWORD_HASH_PATTERN = r"^scrypt\$[0-9]+\$[0-9]+\$[0-9]+\$[0-9a-f]{16,}\$[0-9a-f]{32,}$"  # noqa: S105

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "state_dir": {"type": "string"},
        "store": {"type": "string", "pattern": r"^postgres(ql)?://"},
        "host_id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "backend": {"enum": ["local", "cloud"]},
        "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
        "settle_seconds": {"type": "number", "minimum": 0},
        "rescan_seconds": {"type": "number", "minimum": 1},
        "max_attempts": {"type": "integer", "minimum": 1},
        "retention_days": {"type": "integer", "minimum": 1},
        "status_port": {"type": "integer", "minimum": 0, "maximum": 65535},
        "status_host": {"type": "string", "minLength": 1},
        "status_auth": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "password_hash": {"type": "string", "pattern": PASSWORD_HASH_PATTERN},
                "token_file": {"type": "string", "minLength": 1},
            },
        },
        "log_level": {"enum": ["debug", "info", "warning", "error"]},
        "watch": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["path", "output"],
                "properties": {
                    "path": {"type": "string", "minLength": 1},
                    "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
                    "output": {"type": "string", "minLength": 1},
                    "failed": {"type": "string", "minLength": 1},
                    "done": {"type": "string", "minLength": 1},
                    "rules": {"type": "array", "items": {"type": "string"}},
                    "recursive": {"type": "boolean"},
                    "polling": {"enum": ["auto", True, False]},
                    "poll_interval": {"type": "number", "exclusiveMinimum": 0},
                    "settle_seconds": {"type": "number", "minimum": 0},
                    "ignore": {"type": "array", "items": {"type": "string"}},
                    "schedule": {"type": "string"},
                    "on_success": {"enum": ["leave", "delete", "move"]},
                    "on_failure": {"enum": ["leave", "move"]},
                    "timeline_media": {"type": "string", "minLength": 1},
                },
            },
        },
        "rules": {"type": "array", "items": RULE_SCHEMA},
        "rules_dir": {"type": "string"},
        "cloud": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "api_url": {"type": "string", "pattern": r"^https?://"},
                "min_credits": {"type": "integer", "minimum": 0},
                "poll_seconds": {"type": "number", "exclusiveMinimum": 0},
                "max_polls": {"type": "integer", "minimum": 1},
                "sse_timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "engine": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "whisper_model": {"type": "string", "minLength": 1},
                "threads": {"type": "integer", "minimum": 0},
                "preset": {"enum": ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"]},
                "crf": {"type": "integer", "minimum": 0, "maximum": 51},
                "font": {"type": "string"},
                "smart_cut": {"type": "boolean"},
            },
        },
        "notify": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "webhooks": {"type": "array", "items": {"type": "string", "pattern": r"^https?://"}},
                "command": {"type": "string"},
                "events": {"type": "array", "items": {"enum": ["done", "failed", "credits_low"]}},
            },
        },
    },
}


@dataclass(frozen=True)
class Match:
    """What a rule matches: globs (any of), extensions (any of), size bounds in bytes."""

    globs: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None


@dataclass(frozen=True)
class Rule:
    """One processing rule: a name, what it matches, and what to do."""

    name: str
    match: Match = field(default_factory=Match)
    edit: str | None = None
    plan: Plan = field(default_factory=Plan)
    output: str = DEFAULT_NAME_TEMPLATE
    min_credits: int | None = None
    schedule: str | None = None
    on_success: str | None = None
    on_failure: str | None = None
    #: ``svg``: also write ``<stem>.timeline.svg``, the picture of the edit (kept and cut
    #: stretches over the source's loudness, captions, title, music).
    picture: str = "none"
    source: str = ""
    #: The caption language (:func:`nemod.languages.canonical`) from ``language:`` or the
    #: edit's words; None when the rule does not say.
    language: str | None = None

    @property
    def session_language(self) -> str:
        """The ``language`` a cloud session is created with: the rule's, else ``en``."""
        return self.language or languages.ENGLISH

    @property
    def instruction(self) -> str:
        """The plain-language instruction sent to a cloud backend."""
        return self.edit or "export 1080p MP4"


@dataclass(frozen=True)
class WatchFolder:
    """A watched folder and where its results go."""

    path: Path
    output: Path
    failed: Path
    done: Path
    rules: tuple[str, ...] = ()
    recursive: bool = False
    polling: str | bool = "auto"
    poll_interval: float = 5.0
    settle_seconds: float = 5.0
    ignore: tuple[str, ...] = ()
    schedule: str | None = None
    on_success: str = "leave"
    on_failure: str = "move"
    #: The folder's name in the job store (``id:``); hosts that mount one share at
    #: different places give it the same id. Empty: the folder's absolute path.
    id: str = ""
    #: How editors' workstations reach this folder (``timeline_media:``): a path such as
    #: ``/Volumes/studio/inbox`` or ``Z:\\inbox``, or a URL prefix; exported timelines
    #: reference the source under it. None: the source's path on this host.
    timeline_media: str | None = None

    @property
    def key(self) -> str:
        """How the job store names this folder: ``id`` if set, else the absolute path."""
        return self.id or str(self.path)

    def media_url(self, source: Path) -> str:
        """The URL an exported timeline gives for ``source`` (a file inside this folder):
        :attr:`timeline_media` joined with the source's path inside the folder, or the
        source's own ``file://`` URL when it is not set (see :func:`media_url`)."""
        return media_url(source, self.path, self.timeline_media)


_URL_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|^\\\\[^\\]")


def check_timeline_media(value: str) -> str | None:
    """Why ``value`` cannot be a ``timeline_media:`` prefix, or None: it must be a URL prefix
    (``smb://nas/studio``) or an absolute path as the editors see it (``/Volumes/…``,
    ``Z:\\…``, ``\\\\nas\\share``), never relative (relative to what, on their machine?)."""
    if _URL_PREFIX.match(value) or value.startswith("/") or _WINDOWS_PATH.match(value):
        return None
    return f"{value!r} is neither an absolute path nor a URL prefix (e.g. /Volumes/studio/inbox or smb://nas/inbox)"


def media_url(source: Path, folder: Path | None, prefix: str | None) -> str:
    """The URL editors open ``source`` by: ``prefix`` (a URL prefix or an absolute path,
    see :func:`check_timeline_media`) joined with ``source``'s path inside ``folder``,
    percent-encoded; with no ``prefix`` (or no ``folder``), ``source``'s own ``file://`` URL.
    Pure: nothing is looked up on disk."""
    if prefix is None or folder is None:
        return "file://" + quote(os.fsencode(source.absolute()))
    try:
        parts = source.relative_to(folder).parts
    except ValueError:
        parts = (source.name,)
    tail = "/".join(quote(os.fsencode(part)) for part in parts)
    if _URL_PREFIX.match(prefix):
        return prefix.rstrip("/") + "/" + tail
    base = prefix.replace("\\", "/").rstrip("/")
    if base.startswith("//"):  # \\server\share
        return "file:" + quote(base) + "/" + tail
    if _WINDOWS_PATH.match(prefix):  # Z:\inbox
        return "file:///" + base[:2] + quote(base[2:]) + "/" + tail
    return "file://" + quote(base) + "/" + tail


@dataclass(frozen=True)
class CloudSettings:
    """Settings of the NemoVideo cloud backend."""

    api_url: str = DEFAULT_API_URL
    min_credits: int = 50
    poll_seconds: float = 30.0
    max_polls: int = 40
    sse_timeout_seconds: float = 900.0


@dataclass(frozen=True)
class EngineSettings:
    """Settings of the embedded local engine."""

    whisper_model: str = "tiny.en"
    threads: int = 0
    preset: str = "veryfast"
    crf: int = 23
    font: str | None = None
    #: Where a split model (``base``) is reassembled: ``state_dir/models`` from a config
    #: file; None: the user cache (``nemod.engine.models.user_cache``).
    model_cache: Path | None = None
    #: Render trim-only jobs of H.264 sources by copying whole GOPs and re-encoding only
    #: around the cuts (verified, with a fallback to the full render); false: always re-encode.
    smart_cut: bool = True
    #: Folder that relative paths in edits (background music) are resolved against: the
    #: config file's folder (None: the current directory).
    base_dir: Path | None = None


@dataclass(frozen=True)
class NotifySettings:
    """Where to tell someone that a job finished or failed."""

    webhooks: tuple[str, ...] = ()
    command: str | None = None
    events: tuple[str, ...] = ("done", "failed", "credits_low")


@dataclass(frozen=True)
class AuthSettings:
    """Who may use the dashboard (``status_auth:``): a scrypt password hash and/or a
    token file (mode 0600, relative to ``state_dir``). Neither: no login (loopback only)."""

    password_hash: str | None = None
    token_file: Path | None = None

    @property
    def configured(self) -> bool:
        """True when some way to log in is configured."""
        return self.password_hash is not None or self.token_file is not None


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or ``localhost``) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Config:
    """A validated nemod configuration (immutable)."""

    path: Path
    state_dir: Path
    backend: str = "local"
    #: The shared job store's ``postgresql://`` URL (``${ENV}`` already expanded, so it may
    #: hold a password: never log it, show :attr:`store_name`); None: SQLite in ``state_dir``.
    store: str | None = field(default=None, repr=False)
    #: This host's name in leases, logs and status (unique per host sharing a store).
    host_id: str = field(default_factory=_default_host_id)
    watches: tuple[WatchFolder, ...] = ()
    rules: tuple[Rule, ...] = ()
    concurrency: int = 1
    settle_seconds: float = 5.0
    rescan_seconds: float = 300.0
    max_attempts: int = 5
    retention_days: int = 30
    status_port: int | None = None
    status_host: str = "127.0.0.1"
    status_auth: AuthSettings = field(default_factory=AuthSettings)
    log_level: str = "info"
    cloud: CloudSettings = field(default_factory=CloudSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)

    @property
    def store_name(self) -> str:
        """The job store as shown to people: the URL without its password, or the SQLite path."""
        if self.store is None:
            return str(self.state_dir / SQLITE_NAME)
        return redact_url(self.store)

    def watch_for(self, key: str) -> WatchFolder | None:
        """The watch folder the job store calls ``key`` (see :attr:`WatchFolder.key`), or
        None when this config has no such folder."""
        return next((watch for watch in self.watches if watch.key == key), None)

    def locate(self, key: str, relative: str) -> Path | None:
        """Where a source stored as (``key``, ``relative``) is on this host, or None when
        its watch folder is not configured here."""
        watch = self.watch_for(key)
        return None if watch is None else watch.path / relative

    def rule(self, name: str) -> Rule:
        """Return the rule called ``name``; raises KeyError when there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


def default_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``-c PATH``, else ``$NEMOD_CONFIG``, else ``./nemod.yaml``."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("NEMOD_CONFIG")
    return Path(from_env) if from_env else Path("nemod.yaml")


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(value: int | str) -> int:
    """``500MB`` → 500_000_000, ``2GiB`` → 2_147_483_648, ``1024`` → 1024 (bytes)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", value.lower())
    if not match:
        raise ValueError(f"not a size: {value!r}")
    number, unit, binary = match.groups()
    multiplier = 1024 ** "kmgt".index(unit) * 1024 if binary and unit else _SIZE_UNITS[unit]
    return int(float(number) * multiplier)


# --- YAML with line numbers -------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], int]]:
    """Yield (key path, 1-based line) for every node of a composed YAML document."""
    yield path, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            yield (*path, key), key_node.start_mark.line + 1
            for sub_path, line in _line_index(value_node, (*path, key)):
                if sub_path != (*path, key):
                    yield sub_path, line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _line_index(item, (*path, index))


def _format_path(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Document:
    """A parsed YAML file with a key-path → line map, for located problems."""

    def __init__(self, file: Path, display: str) -> None:
        self.display = display
        self.problems: list[Problem] = []
        text = file.read_text(encoding="utf-8")
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            self.problems.append(Problem(display, line, "", f"YAML syntax error: {problem}"))
            self.data, node = None, None
        self.lines = dict(_line_index(node)) if node is not None else {}
        if self.data is None and not self.problems:
            self.data = {}
        self.data = self._expand(self.data, ())

    def line(self, path: tuple[Any, ...]) -> int | None:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    def problem(self, path: tuple[Any, ...], message: str, prefix: tuple[Any, ...] = ()) -> None:
        full = (*prefix, *path)
        self.problems.append(Problem(self.display, self.line(path), _format_path(full), message))

    def _expand(self, value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            def substitute(match: re.Match[str]) -> str:
                name, default = match.group(1), match.group(2)
                if name in os.environ:
                    return os.environ[name]
                if default is not None:
                    return default
                self.problem(path, f"environment variable ${{{name}}} is not set")
                return ""
            return _ENV.sub(substitute, value)
        if isinstance(value, dict):
            return {key: self._expand(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self._expand(item, (*path, index)) for index, item in enumerate(value)]
        return value


def _schema_problems(
    document: _Document, schema: Mapping[str, Any], prefix: tuple[Any, ...] = ()
) -> set[tuple[Any, ...]]:
    """Record every schema problem of ``document``; return the key paths whose values are
    wrong (not those that merely hold an unknown key), so later checks can skip them."""
    validator = jsonschema.Draft202012Validator(schema)
    broken: set[tuple[Any, ...]] = set()
    for error in sorted(validator.iter_errors(document.data), key=lambda e: list(map(str, e.path))):
        path = tuple(error.absolute_path)
        if error.validator != "additionalProperties":
            broken.add(path)
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            extras = sorted(set(error.instance) - set(allowed), key=str)
            for extra in extras:
                document.problem(
                    (*path, extra),
                    f"unknown key {extra!r} (expected one of: {', '.join(allowed)})",
                    prefix,
                )
        elif error.validator == "enum":
            choices = ", ".join(str(c).lower() for c in error.validator_value)
            document.problem(path, f"{error.instance!r} is not one of: {choices}", prefix)
        elif error.validator == "required":
            document.problem(path, error.message.replace("is a required property", "is required"), prefix)
        elif path == ("store",):
            # never echo the value: it may hold a password
            document.problem(path, "store is a postgresql:// URL (leave it out for SQLite in state_dir)", prefix)
        elif error.validator == "pattern" and path == ("host_id",):
            document.problem(path, "a host id is 1 to 64 letters, digits, '-', '_' and '.' (not first)", prefix)
        elif error.validator == "pattern" and path and path[-1] == "name":
            document.problem(path, "a rule name uses letters, digits, '-', '_' and '.'", prefix)
        elif error.validator == "pattern" and path and path[-1] == "id":
            document.problem(
                path, "a folder id is 1 to 64 letters, digits, '-', '_' and '.' (not first)", prefix
            )
        else:
            document.problem(path, error.message, prefix)
    return broken


def _check_glob(pattern: str) -> str | None:
    if not pattern.strip():
        return "empty glob"
    if pattern.count("[") != pattern.count("]"):
        return f"bad glob {pattern!r}: unbalanced '[' or ']'"
    if "/" in pattern or "\\" in pattern:
        return f"bad glob {pattern!r}: globs match file names, not paths"
    if "**" in pattern:
        return f"bad glob {pattern!r}: '**' is not supported; use recursive: true on the folder"
    return None


def _build_rule(
    raw: Mapping[str, Any],
    document: _Document,
    path: tuple[Any, ...],
    prefix: tuple[Any, ...],
    plan_edits: bool,
    *,
    files_base: Path | None = None,
) -> Rule | None:
    """The rule described by ``raw`` at ``path`` of ``document``, or None after recording
    its problems. ``files_base`` (the config's folder; None: do not look) is where files the
    edit names, such as background music, are looked for."""
    ok = True
    match_raw = raw.get("match") or {}
    globs = match_raw.get("glob", [])
    globs = [globs] if isinstance(globs, str) else list(globs)
    for index, pattern in enumerate(globs):
        message = _check_glob(pattern)
        if message:
            sub = ("glob",) if isinstance(match_raw.get("glob"), str) else ("glob", index)
            document.problem((*path, "match", *sub), message, prefix)
            ok = False
    extensions = tuple(ext.lower().lstrip(".") for ext in match_raw.get("extensions", []))
    for index, ext in enumerate(extensions):
        if ext not in ACCEPTED_EXTENSIONS:
            document.problem(
                (*path, "match", "extensions", index),
                f"{ext!r} is not an accepted type ({', '.join(sorted(ACCEPTED_EXTENSIONS))})",
                prefix,
            )
            ok = False
    sizes: dict[str, int | None] = {}
    for key in ("min_size", "max_size"):
        value = match_raw.get(key)
        sizes[key] = parse_size(value) if value is not None else None
    if raw.get("edit") and raw.get("operations"):
        document.problem(path, "give either edit: or operations:, not both", prefix)
        ok = False
    output = raw.get("output", DEFAULT_NAME_TEMPLATE)
    template_problem = check_template(output)
    if template_problem:
        document.problem((*path, "output"), template_problem, prefix)
        ok = False
    schedule_problem = check_schedule(raw["schedule"]) if raw.get("schedule") else None
    if schedule_problem:
        document.problem((*path, "schedule"), schedule_problem, prefix)
        ok = False
    plan = Plan()
    if plan_edits:
        try:
            if raw.get("operations"):
                plan = plan_from_operations(raw["operations"])
            else:
                plan = parse_edit(raw.get("edit") or "export 1080p MP4")
        except (EditParseError, TypeError, ValueError) as exc:
            key = "operations" if raw.get("operations") else "edit"
            document.problem((*path, key), str(exc), prefix)
            ok = False
    language, language_ok = _rule_language(raw, document, path, prefix, plan)
    ok = ok and language_ok
    captions: Captions | None = plan.find(Captions)
    if captions is not None and captions.language != language:
        plan = Plan(tuple(replace(op, language=language) if op is captions else op for op in plan.operations))
    music = plan.find(Music)
    if music is not None and files_base is not None:
        music_file = resolve_path(files_base, music.path)
        if not music_file.is_file():
            key = "operations" if raw.get("operations") else "edit"
            document.problem((*path, key), f"background music file not found: {music_file}", prefix)
            ok = False
    if not ok:
        return None
    return Rule(
        name=raw["name"],
        match=Match(tuple(globs), extensions, sizes["min_size"], sizes["max_size"]),
        edit=raw.get("edit"),
        plan=plan,
        output=output,
        min_credits=raw.get("min_credits"),
        schedule=raw.get("schedule"),
        on_success=raw.get("on_success"),
        on_failure=raw.get("on_failure"),
        picture=raw.get("picture", Rule.picture),
        source=f"{document.display}:{document.line(path) or 1}",
        language=language,
    )


def _rule_language(
    raw: Mapping[str, Any], document: _Document, path: tuple[Any, ...], prefix: tuple[Any, ...], plan: Plan,
) -> tuple[str | None, bool]:
    """(the rule's caption language, whether it is sound): ``language:`` or the language the
    edit names; a rule whose edit is written in Chinese and names none gets ``auto`` (its
    speech is as likely Chinese as anything else). Records a problem for an unknown code or
    a ``language:`` that contradicts the edit."""
    said: str | None = None
    if raw.get("language") is not None:
        try:
            said = languages.canonical(str(raw["language"]))
        except ValueError as exc:
            document.problem((*path, "language"), str(exc), prefix)
            return None, False
    captions: Captions | None = plan.find(Captions)
    named = captions.language if captions is not None else languages.named_in(raw.get("edit") or "")
    if said is not None and named is not None and said != named:
        document.problem(
            (*path, "language"), f"language: {said} contradicts the edit, which asks for {named} captions", prefix
        )
        return None, False
    if said is None and named is None and languages.written_in_chinese(raw.get("edit") or ""):
        return languages.AUTO, True
    return said or named, True


_TEMPLATE_FIELDS = frozenset({"stem", "rule", "date", "ext", "time"})


def check_template(template: str) -> str | None:
    """Return why an output name template is unsafe or invalid, or None when it is fine.

    A template may use ``{stem}``, ``{rule}``, ``{date}``, ``{time}``, ``{ext}``; it may
    name sub-folders but can never leave the output folder.
    """
    import string

    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return f"bad template {template!r}: {exc}"
    unknown = fields - _TEMPLATE_FIELDS
    if unknown:
        return f"unknown field {{{sorted(unknown)[0]}}} in {template!r} (use stem, rule, date, time, ext)"
    if template.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", template):
        return f"template {template!r} is absolute; it must stay inside the output folder"
    if any(part == ".." for part in re.split(r"[/\\]", template)):
        return f"template {template!r} uses '..'; it must stay inside the output folder"
    return None


def resolve_path(base: Path, value: str) -> Path:
    """``value`` from a config (``~`` expanded) as an absolute path: relative paths are
    taken from ``base``, the config file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _load_rules_dir(
    folder: Path, base_display: Path, plan_edits: bool, problems: list[Problem],
    *, files_base: Path | None = None,
) -> list[Rule]:
    rules: list[Rule] = []
    for file in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        display = os.path.relpath(file, base_display)
        document = _Document(file, display)
        if not document.problems:
            if not isinstance(document.data, dict):
                document.problem((), "a rule file holds one rule (a mapping)")
            else:
                _schema_problems(document, RULE_SCHEMA)
                if not document.problems:
                    rule = _build_rule(document.data, document, (), (), plan_edits,
                                       files_base=files_base)
                    if rule:
                        rules.append(rule)
        problems.extend(document.problems)
    return rules


def _watch_folders(
    data: Mapping[str, Any],
    document: _Document,
    base: Path,
    settle: float,
    sound: Callable[..., bool],
    *,
    rule_names: set[str],
    exists: Callable[[Path], bool] | None,
) -> tuple[WatchFolder, ...]:
    """The ``watch:`` entries whose schema is ``sound``, paths resolved against ``base``;
    problems (a missing folder when ``exists`` is given, an output that is the folder
    itself, a rule not in ``rule_names``, a bad schedule, a folder id used twice) are
    added to ``document``."""
    watches: list[WatchFolder] = []
    keys: set[str] = set()
    for index, raw in enumerate(data.get("watch", []) if isinstance(data.get("watch"), list) else []):
        key = ("watch", index)
        if not sound(*key):
            continue
        watch_path = resolve_path(base, raw["path"])
        if exists is not None and not exists(watch_path):
            document.problem((*key, "path"), f"folder not found: {watch_path}")
        output = resolve_path(base, raw["output"])
        if output == watch_path:
            document.problem((*key, "output"), "the output folder must differ from the watched folder")
        for name in raw.get("rules", []):
            if name not in rule_names:
                document.problem((*key, "rules"), f"no rule named {name!r}")
        if raw.get("schedule") and (schedule_problem := check_schedule(raw["schedule"])):
            document.problem((*key, "schedule"), schedule_problem)
        if raw.get("timeline_media") and (media_problem := check_timeline_media(raw["timeline_media"])):
            document.problem((*key, "timeline_media"), media_problem)
        store_key = raw.get("id") or str(watch_path)
        if store_key in keys:
            field_name = "id" if raw.get("id") else "path"
            document.problem((*key, field_name), f"another watch folder already uses {store_key!r}")
        keys.add(store_key)
        watches.append(_settings(
            WatchFolder, raw, path=watch_path, output=output,
            failed=resolve_path(base, raw["failed"]) if "failed" in raw else watch_path / "failed",
            done=resolve_path(base, raw["done"]) if "done" in raw else watch_path / "done",
            settle_seconds=float(raw.get("settle_seconds", settle)),
        ))
    return tuple(watches)


def load(
    path: str | os.PathLike[str],
    *,
    check_folders: bool = True,
    exists: Callable[[Path], bool] = Path.is_dir,
) -> Config:
    """Read, validate and freeze the config at ``path``.

    ``check_folders`` verifies that watched folders exist (``exists`` is the test;
    output folders are created on demand) and that files edits name (background music)
    are there. Raises :class:`ConfigError` listing every
    problem found, with file, line and key path.
    """
    file = Path(path)
    display = str(path)
    if not file.is_file():
        raise ConfigError([Problem(display, None, "", "config file not found")])
    base = file.resolve().parent
    document = _Document(file, display)
    if document.problems:
        raise ConfigError(document.problems)
    if not isinstance(document.data, dict):
        raise ConfigError([Problem(display, 1, "", "the config must be a mapping of keys")])
    # Schema problems do not stop the other checks: each rule, folder and setting whose
    # value is sound is still checked, so `nemod check` reports every problem at once.
    broken = _schema_problems(document, SCHEMA)
    if () in broken:
        raise ConfigError(document.problems)

    def sound(*key: Any) -> bool:
        return not any(path[: len(key)] == key or key[: len(path)] == path for path in broken)

    data: dict[str, Any] = document.data
    backend = data.get("backend", "local")
    plan_edits = backend == "local"
    problems = document.problems

    rules: list[Rule] = []
    unsound_rules: set[str] = set()
    for index, raw in enumerate(data.get("rules", []) if sound("rules") or isinstance(data.get("rules"), list) else []):
        if not sound("rules", index):
            if isinstance(raw, dict) and isinstance(raw.get("name"), str):
                unsound_rules.add(raw["name"])  # reported already; not "no rule named" again
            continue
        rule = _build_rule(raw, document, ("rules", index), (), plan_edits,
                           files_base=base if check_folders else None)
        if rule:
            rules.append(rule)
    if "rules_dir" in data and sound("rules_dir"):
        rules_dir = resolve_path(base, data["rules_dir"])
        if not rules_dir.is_dir():
            document.problem(("rules_dir",), f"folder not found: {rules_dir}")
        else:
            rules.extend(_load_rules_dir(rules_dir, base, plan_edits, problems,
                                         files_base=base if check_folders else None))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            problems.append(Problem(rule.source.rsplit(":", 1)[0], None, "", f"rule {rule.name!r} is defined twice"))
        seen.add(rule.name)
    if not rules and not problems and sound("rules"):
        document.problem(("rules",), "no rules: add rules: or rules_dir:")

    settle = float(data.get("settle_seconds", Config.settle_seconds)) if sound("settle_seconds") else Config.settle_seconds
    watches = _watch_folders(data, document, base, settle, sound, rule_names=seen | unsound_rules,
                             exists=exists if check_folders else None)
    state_dir = resolve_path(base, data.get("state_dir", DEFAULT_STATE_DIR))
    auth = _auth(data, document, state_dir, sound, check_files=check_folders)
    if problems:
        raise ConfigError(problems)

    cloud_raw = data.get("cloud", {})
    engine_raw = data.get("engine", {})
    # Every default lives in its dataclass; load() only resolves paths and the environment.
    return _settings(
        Config, data, path=file.resolve(), backend=backend, watches=watches, rules=tuple(rules),
        settle_seconds=settle, state_dir=state_dir, status_auth=auth,
        cloud=_settings(CloudSettings, cloud_raw, api_url=(
            cloud_raw.get("api_url") or os.environ.get("NEMO_API_URL") or DEFAULT_API_URL)),
        engine=_settings(EngineSettings, engine_raw, base_dir=base,
                         model_cache=state_dir / "models", font=(
            str(resolve_path(base, engine_raw["font"])) if engine_raw.get("font") else None)),
        notify=_settings(NotifySettings, data.get("notify", {})),
    )


def _auth(
    data: Mapping[str, Any], document: _Document, state_dir: Path, sound: Callable[..., bool],
    *, check_files: bool,
) -> AuthSettings:
    """``status_auth`` resolved; a non-loopback ``status_host`` without it, or a token file
    others can read, is a problem (the dashboard can act on jobs)."""
    raw = data.get("status_auth", {}) if sound("status_auth") else {}
    token = resolve_path(state_dir, raw["token_file"]) if raw.get("token_file") else None
    auth = AuthSettings(password_hash=raw.get("password_hash"), token_file=token)
    host = data.get("status_host", Config.status_host)
    if sound("status_host") and not is_loopback(host) and not auth.configured and sound("status_auth"):
        document.problem(("status_host",), f"binding the dashboard to {host} needs status_auth "
                         "(password_hash from `nemod password`, or token_file): anyone who reaches "
                         "it could retry, cancel and forget jobs")
    if token is not None and check_files:
        try:
            mode = token.stat().st_mode & 0o777
        except OSError:
            document.problem(("status_auth", "token_file"), f"token file not found: {token}")
        else:
            if mode & 0o077:
                document.problem(("status_auth", "token_file"),
                                 f"{token} is readable by others (mode {mode:o}); chmod 600 it")
    return auth


_T = TypeVar("_T")


def _settings(kind: type[_T], raw: Mapping[str, Any], **resolved: Any) -> _T:
    """A ``kind`` dataclass from the schema-checked keys of ``raw`` that name its fields
    (lists become tuples, so the result stays immutable), its own defaults for the rest and
    the ``resolved`` values (paths, environment) on top."""
    names = {item.name for item in fields(kind)}  # type: ignore[arg-type]
    given = {key: tuple(value) if isinstance(value, list) else value for key, value in raw.items() if key in names}
    return kind(**{**given, **resolved})
