"""The NemoVideo cloud backend: a typed API client, an ADK event decoder, token storage.

``api``     :class:`~nemod.cloud.api.NemoClient` — the HTTP calls, envelope, error mapping
``sse``     pure decoding of ``/run_sse`` ADK events
``auth``    :class:`~nemod.cloud.auth.TokenStore` — token and client id in ``state_dir``
``backend`` :class:`~nemod.cloud.backend.CloudBackend` — one job through the API
"""

from nemod.cloud.api import Balance, NemoClient, RenderStatus
from nemod.cloud.auth import TokenStore
from nemod.cloud.sse import AgentEvent, StreamResult

__all__ = ["AgentEvent", "Balance", "NemoClient", "RenderStatus", "StreamResult", "TokenStore"]
