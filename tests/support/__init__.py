"""Shared test harnesses (``pytest`` puts ``tests/`` on ``sys.path``; see ``pythonpath`` in
pyproject.toml): a manual clock, a copying backend, log capture with the bound context, the
in-process ``nemod serve`` harness and the one-iteration daemon driver."""
