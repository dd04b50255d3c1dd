"""``nemod run`` for the reliability suites, with the cloud backend's waits scaled down.

Builds the daemon exactly as :mod:`nemod.commands.run` does (config, JSON logs on
stderr, the store the config names, its ``host_id``, the service runtime) except that a cloud
backend gets short polling and drop-recovery waits, so a job resumed after a SIGKILL
finishes in seconds instead of minutes. Run as a script:
``python daemon_child.py <config.yaml>``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nemod.app import build_backend, build_store, check_shared_account
from nemod.backends.base import Backend
from nemod.cloud.api import ClientPolicy
from nemod.cloud.backend import CloudBackend, JobPolicy
from nemod.config import Config, load
from nemod.daemon import Daemon, DaemonOptions
from nemod.daemon.identity import make_owner
from nemod.logs import configure
from nemod.service.runtime import build_runtime

#: Cloud waits scaled down about 60 times; a dropped stream is given ~4 s to show its edit.
SCALED_JOB = JobPolicy(
    poll_seconds=0.1, max_polls=600, drop_first_wait=0.5, drop_interval=1.0,
    drop_unchanged_reads=5, confirm_interval=0.05, confirm_reads=3,
    credits_recheck_seconds=1.0, retry_delay=0.5, rate_limit_delay=0.3,
)
SCALED_CLIENT = ClientPolicy(
    rate_limit_wait=0.05, backoff=(0.05, 0.1, 0.2), connect_timeout=2.0, read_timeout=10.0,
    upload_timeout=30.0, heartbeat_gap=1.0, heartbeat_only_limit=10.0, stream_limit=30.0,
)


def backend_for(config: Config) -> Backend:
    """The configured backend; a cloud one with the scaled-down waits."""
    if config.backend == "cloud":
        check_shared_account(config, os.environ)
        return CloudBackend(
            config.cloud, config.state_dir, job_policy=SCALED_JOB, client_policy=SCALED_CLIENT
        )
    return build_backend(config)


def options_from_env() -> DaemonOptions | None:
    """``NEMOD_CHILD_LEASE=<seconds>``: a short lease (heartbeat every fifth of it), so a
    killed host's job is re-claimed in seconds; None: the daemon's defaults."""
    lease = os.environ.get("NEMOD_CHILD_LEASE")
    if not lease:
        return None
    return DaemonOptions(lease_seconds=float(lease), heartbeat_seconds=float(lease) / 5)


def main(path: str) -> int:
    """Run the daemon of the config at ``path`` until SIGTERM."""
    config = load(Path(path))
    configure(config.log_level, json=True, host=config.host_id)
    store = build_store(config)
    runtime = build_runtime(config, open_store=lambda: build_store(config, read_only=True))
    try:
        daemon = Daemon(
            config, store, backend_for(config), config_loader=lambda: load(Path(path)),
            backend_factory=backend_for, events=runtime.on_event, service=runtime,
            owner=make_owner(config.host_id), options=options_from_env(),
        )
        return daemon.run_forever()
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
