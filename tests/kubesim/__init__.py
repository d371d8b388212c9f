"""kubesim: an honest stand-in for a Kubernetes cluster, for tests on machines without one.

A real-semantics API server (REST, watches, selectors, validation, finalizers, garbage collection,
RBAC for service-account tokens, TokenRequest), a Job controller, a scheduler and a kubelet that runs
pods as local process trees (under bubblewrap when available). See README.md for what it does and
what a real cluster does that it cannot show.
"""

from ._apiserver import ApiServer, DeleteOptions, User
from ._errors import ApiError
from ._http import ApiCall
from ._sim import KubeSim, SimOptions
from ._store import Change, Store

__all__ = ["ApiCall", "ApiError", "ApiServer", "Change", "DeleteOptions", "KubeSim", "SimOptions", "Store", "User"]
