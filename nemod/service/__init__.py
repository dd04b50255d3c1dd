"""Running nemod as a system service: sd_notify, processing windows, notifications, status.

Each module plugs into the daemon through a small interface it defines here rather
than by importing the daemon or the job store:

* :class:`~nemod.service.sdnotify.SdNotifier` — ``ready()``, ``status()``,
  ``keepalive(now)``, ``stopping()``; a no-op when ``$NOTIFY_SOCKET`` is unset.
* :class:`~nemod.schedule.Schedule` (in `nemod/schedule.py`, beside the config that checks it) — ``is_open(now)`` / ``next_open(now)``.
* :class:`~nemod.service.notify.Notifier` — ``on_event(name, payload)``.
* :class:`~nemod.service.status.StatusSource` — what ``nemod status``, ``/metrics``
  and the status page read (a snapshot of counts, running jobs, queue, failures).
"""
