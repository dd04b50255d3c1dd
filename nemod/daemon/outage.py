"""Whether the job store answers, and when the daemon asks it again after it did not."""

from __future__ import annotations

import structlog

#: The longest wait between two tries of a store that does not answer (seconds).
LONGEST_BACKOFF = 30.0


class StoreOutage:
    """An outage of the job store as the daemon sees it: ``error`` (None: it answers) and a
    backoff of 1 s doubling to :data:`LONGEST_BACKOFF` between tries."""

    def __init__(self) -> None:
        self.error: str | None = None
        self._retry_at = 0.0
        self._backoff = 0.0
        self._log = structlog.get_logger("nemod.daemon")

    def waiting(self, now: float) -> bool:
        """True while the store is down and its next try is still ahead."""
        return self.error is not None and now < self._retry_at

    def failed(self, error: Exception, now: float) -> None:
        """The store did not answer at ``now``: back off (logged once per outage)."""
        self._backoff = min(max(self._backoff * 2, 1.0), LONGEST_BACKOFF)
        self._retry_at = now + self._backoff
        if self.error is None:
            self._log.warning("store_unavailable", error=str(error), retry_in=self._backoff)
        self.error = str(error)

    def answered(self) -> bool:
        """The store answered: True when that ends an outage (the backoff starts afresh)."""
        if self.error is None:
            return False
        self._log.info("store_available", was=self.error)
        self.error, self._backoff = None, 0.0
        return True
