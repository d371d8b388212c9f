"""shoal.server.dashboard: the web dashboard served by the control plane under /dashboard.

Server-rendered Jinja2 pages with htmx (vendored) and server-sent events; no JavaScript from the
internet. ``mount(app)`` adds the pages, static files and the sign-in link API (``POST /v1/dashboard/links``).
"""

from shoal.server.dashboard._clusters import (
    ClusterSource,
    ClusterView,
    ConditionView,
    PoolView,
    cluster_source,
)
from shoal.server.dashboard._routes import PREFIX, mount

__all__ = ["PREFIX", "ClusterSource", "ClusterView", "ConditionView", "PoolView", "cluster_source", "mount"]
