"""shoal.server: the control plane — FastAPI app, auth, routing of runs to agents, ingest, logs, artifacts."""

from shoal.server._app import create_app
from shoal.server._settings import ServerSettings
from shoal.server._state import ServerState

__all__ = ["ServerSettings", "ServerState", "create_app"]
