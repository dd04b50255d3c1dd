"""The watch-folder daemon, split by what it does.

::

    FolderWatcher (per folder) ──settled files──▶ JobStore.enqueue            (intake)
    JobStore.claim (lease) ──▶ WorkerPool ──▶ Attempt ──▶ pipeline.run_job    (leases, workers, attempt)
        ──▶ transition_for(outcome) ──▶ complete / retry / wait / fail        (attempt: pure)
        ──▶ source kept, moved or deleted; <stem>.error.txt                   (disposition)

- :mod:`nemod.daemon.core` — :class:`Daemon`: lifecycle, running attempts and applying their
  transitions, reload, health;
  :meth:`Daemon.run_once` is the one testable iteration;
- :mod:`nemod.daemon.attempt` — one try at one job, resolved once, and the pure mapping
  from its outcome to the job's next state;
- :mod:`nemod.daemon.intake` — the folder watchers and the queueing of what they find;
- :mod:`nemod.daemon.leases` — a running job's handle, its fenced checkpoint, heartbeats, dead owners;
- :mod:`nemod.daemon.workers` — the long-lived worker threads;
- :mod:`nemod.daemon.identity` — lease owners (``host:pid:start``) and dead-owner checks;
- :mod:`nemod.daemon.disposition` — moving, deleting and annotating source files;
- :mod:`nemod.daemon.options` — timing knobs and the retry backoff.
"""

from nemod.daemon.attempt import NO_RULE, Attempt, Transition, transition_for
from nemod.daemon.core import Daemon, EventCallback
from nemod.daemon.disposition import move_aside, write_failure
from nemod.daemon.identity import make_owner, owner_is_dead
from nemod.daemon.options import DaemonOptions, backoff
from nemod.daemon.workers import WorkerPool

__all__ = [
    "NO_RULE", "Attempt", "Daemon", "DaemonOptions", "EventCallback", "Transition", "WorkerPool", "backoff",
    "make_owner", "move_aside", "owner_is_dead", "transition_for", "write_failure",
]
