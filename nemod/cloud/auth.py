"""The NemoVideo token and client id, kept in ``state_dir`` (files of mode 0600).

``NEMO_TOKEN`` in the environment wins and is never stored. Otherwise the client
acquires an anonymous token with a client id that is created once and reused
(``NEMO_CLIENT_ID`` or ``state_dir/cloud/client_id``): the service allows one
anonymous token per client per 7 days, so a new id per run would soon be refused.
The stored token is reused until it is 7 days old or the service rejects it.
The token is a secret: nothing here logs it, and :class:`Token` hides it in ``repr``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: How long an anonymous token is valid.
TOKEN_LIFETIME_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Token:
    """A bearer token; ``configured`` when it came from ``NEMO_TOKEN`` (nemod cannot renew it)."""

    value: str = field(repr=False)
    configured: bool = False

    def __str__(self) -> str:
        return "<token>"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    temporary.chmod(0o600)
    temporary.replace(path)


class TokenStore:
    """Token and client id persistence for one API base URL.

    ``env`` is the environment to read ``NEMO_TOKEN`` / ``NEMO_CLIENT_ID`` from;
    ``now`` returns wall-clock seconds (injected so expiry can be tested).
    """

    def __init__(
        self,
        state_dir: Path,
        api_url: str,
        *,
        env: Mapping[str, str] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.folder = state_dir / "cloud"
        self.api_url = api_url.rstrip("/")
        self.env = dict(os.environ if env is None else env)
        self.now = now
        self._client_id: str | None = None

    @property
    def token_file(self) -> Path:
        """Where anonymous tokens are kept (one per API URL)."""
        return self.folder / "token.json"

    def client_id(self) -> str:
        """``NEMO_CLIENT_ID``, else the id stored in ``state_dir`` (created once)."""
        configured = self.env.get("NEMO_CLIENT_ID", "").strip()
        if configured:
            return configured
        if self._client_id is None:
            self._client_id = self._stored_client_id()
        return self._client_id

    def _stored_client_id(self) -> str:
        path = self.folder / "client_id"
        try:
            stored = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            stored = ""
        if stored:
            return stored
        created = str(uuid.uuid4())
        _write_private(path, created + "\n")
        return created

    def current(self) -> Token | None:
        """The token to use now: ``NEMO_TOKEN``, else a stored, unexpired anonymous one."""
        configured = self.env.get("NEMO_TOKEN", "").strip()
        if configured:
            return Token(configured, configured=True)
        entry = self._load().get(self.api_url)
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        acquired = float(entry.get("acquired_at", 0))
        if self.now() - acquired >= TOKEN_LIFETIME_SECONDS:
            return None
        return Token(entry["token"])

    def save(self, value: str) -> Token:
        """Store a newly acquired anonymous token (mode 0600) and return it."""
        entries = self._load()
        entries[self.api_url] = {"token": value, "acquired_at": self.now()}
        _write_private(self.token_file, json.dumps(entries, indent=2) + "\n")
        return Token(value)

    def forget(self) -> None:
        """Drop the stored anonymous token for this API URL (it was rejected)."""
        entries = self._load()
        if entries.pop(self.api_url, None) is not None:
            _write_private(self.token_file, json.dumps(entries, indent=2) + "\n")

    def _load(self) -> dict[str, object]:
        try:
            loaded = json.loads(self.token_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}
