"""``python -m nemod``: the same as the ``nemod`` command."""

from nemod.cli import main

raise SystemExit(main())
