"""Who may use the dashboard, and proof that a form came from its own page.

- **Passwords** are kept only as ``scrypt$<n>$<r>$<p>$<salt hex>$<key hex>``
  (:func:`hash_password`, printed by ``nemod password``), checked in constant time.
- **Token file**: a secret in ``state_dir`` (mode 0600) that logs in like a password, or
  as ``Authorization: Bearer <token>`` for scripts.
- **Sessions**: a logged-in browser holds a random session id in an ``HttpOnly``,
  ``SameSite=Strict`` cookie; sessions live in memory and end when nemod restarts.
- **CSRF**: every form carries a token derived (HMAC) from the server's secret and the
  session; a POST without the right one is refused. Without auth configured (loopback
  only) the "session" is a random per-browser cookie, so a page of another site still
  cannot post a valid token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from pathlib import Path

from nemod.config import AuthSettings
from nemod.errors import ConfigError, Problem

#: scrypt cost parameters for new hashes (n=2**14: ~50 ms and 16 MiB per check).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1

#: The session cookie's name.
COOKIE = "nemod_session"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``status_auth.password_hash`` line for ``password`` (a fresh random salt)."""
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=64 * 1024 * 1024)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the ``stored`` hash (False for a malformed hash)."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        expected = bytes.fromhex(key)
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=128 * 1024 * 1024, dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def read_token(path: Path) -> str:
    """The secret in the token file ``path``; raises ConfigError when it is missing, empty or
    readable by others (it must be mode 0600)."""
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "status_auth.token_file",
                                   f"cannot read the token file: {exc.strerror}")]) from None
    if mode & 0o077:
        raise ConfigError([Problem(str(path), None, "status_auth.token_file",
                                   f"readable by others (mode {mode:o}); chmod 600 it")])
    if len(text) < 16:
        raise ConfigError([Problem(str(path), None, "status_auth.token_file",
                                   "the token must be at least 16 characters")])
    return text


class Gate:
    """Logins, sessions and CSRF tokens for one server process.

    ``settings`` says what logs in (None or nothing configured: no login is asked, which
    the config allows on loopback only).
    """

    def __init__(self, settings: AuthSettings | None) -> None:
        self.settings = settings or AuthSettings()
        self._token = read_token(self.settings.token_file) if self.settings.token_file else None
        self._secret = secrets.token_bytes(32)
        self._sessions: set[str] = set()
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        """True when a person must log in."""
        return self.settings.configured

    def login(self, secret: str) -> str | None:
        """A new session id when ``secret`` is the password or the token, else None."""
        ok = False
        if self.settings.password_hash and verify_password(secret, self.settings.password_hash):
            ok = True
        if self._token is not None and hmac.compare_digest(secret.encode(), self._token.encode()):
            ok = True
        return self.new_session() if ok else None

    def new_session(self) -> str:
        """A fresh session id (logged in when login is required)."""
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions.add(session)
        return session

    def logout(self, session: str | None) -> None:
        """End ``session``."""
        with self._lock:
            self._sessions.discard(session or "")

    def allowed(self, session: str | None, bearer: str | None = None) -> bool:
        """True when the request may see and do things: no login required, a live session,
        or the token as a bearer."""
        if not self.required:
            return True
        if bearer is not None and self._token is not None:
            return hmac.compare_digest(bearer.encode(), self._token.encode())
        with self._lock:
            return session is not None and session in self._sessions

    def csrf(self, session: str | None) -> str:
        """The CSRF token forms of ``session`` carry."""
        return hmac.new(self._secret, (session or "").encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str | None, token: str | None) -> bool:
        """True when ``token`` is ``session``'s CSRF token (a session is required)."""
        if not session or not token:
            return False
        return hmac.compare_digest(self.csrf(session), token)
