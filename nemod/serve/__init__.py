"""``nemod serve``: a NemoVideo-compatible API over the local engine.

``service``  accounts, tokens, sessions, edits and renders (no HTTP)
``server``   the HTTP layer (:class:`~nemod.serve.server.NemoServer`)
``faults``   fault injection for tests (off by default)
``testing``  helpers to run a server and a client in one process (tests, benchmarks)
"""

from nemod.serve.faults import FAULTS, Faults
from nemod.serve.server import NemoServer
from nemod.serve.service import ServeSettings

__all__ = ["FAULTS", "Faults", "NemoServer", "ServeSettings"]
