"""REST and WebSocket routes of the control plane; each module is one resource."""

from shoal.server.api._admin import router as admin_router
from shoal.server.api._agent import router as agent_router
from shoal.server.api._clusters import router as clusters_router
from shoal.server.api._executions import router as executions_router
from shoal.server.api._metrics import router as metrics_router
from shoal.server.api._resources import router as resources_router

routers = [admin_router, resources_router, executions_router, metrics_router, agent_router, clusters_router]

__all__ = ["routers"]
