"""Watching folders: which observer to use, what to ignore, when a file is finished.

Pure parts: :mod:`~nemod.watch.mounts` (mount-table parsing and the observer choice),
:mod:`~nemod.watch.ignore` (ignore patterns), :mod:`~nemod.watch.settle` (the settle
tracker). Impure: :mod:`~nemod.watch.watcher` (watchdog observers, scanning) and
:mod:`~nemod.watch.openfiles` (who has a file open for writing).
"""
