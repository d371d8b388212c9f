"""shoal.clusters: the ephemeral cluster and namespace lifecycle — a level-triggered controller with
pluggable provisioners (``local``, ``namespace``, ``script``, ``noop``), warm pools with compare-and-swap
claims, absolute deadlines, a sticky teardown decision, a leak reaper and a sealed kubeconfig hand-over.

Dashboard and API read models: :func:`list_clusters` and :func:`list_pools`.
"""

from shoal.clusters._agents import registered_labels
from shoal.clusters._controller import (
    SPARE_LABEL,
    ClusterController,
    ControllerSettings,
    Pass,
    Sealer,
    agent_name,
    effective_size,
    external_name,
)
from shoal.clusters._local import AgentSpawner, LocalProvisioner, ProcessSpawner, agent_pids
from shoal.clusters._memory import MemoryProvisioner, World
from shoal.clusters._provisioner import (
    AgentInstall,
    Credentials,
    Observation,
    OwnedResource,
    OwnerTags,
    Provisioner,
    ProvisionerError,
    State,
)
from shoal.clusters._reaper import Reaped, Reaper
from shoal.clusters._spec import (
    API_VERSION,
    BUILTIN_CLASSES,
    KIND_CLASS,
    KIND_CLUSTER,
    KIND_POOL,
    PHASES,
    ClassSpec,
    ClusterSpec,
    PoolSpec,
    SpecError,
    parse_class,
    parse_cluster,
    parse_duration,
    parse_pool,
    split_document,
)
from shoal.clusters._views import (
    controller_from_env,
    default_provisioners,
    list_classes,
    list_clusters,
    list_pools,
    present_class,
    present_cluster,
    present_pool,
    runs_in_server,
)

__all__ = [
    "API_VERSION",
    "BUILTIN_CLASSES",
    "KIND_CLASS",
    "KIND_CLUSTER",
    "KIND_POOL",
    "PHASES",
    "SPARE_LABEL",
    "AgentInstall",
    "AgentSpawner",
    "ClassSpec",
    "ClusterController",
    "ClusterSpec",
    "ControllerSettings",
    "Credentials",
    "LocalProvisioner",
    "MemoryProvisioner",
    "Observation",
    "OwnedResource",
    "OwnerTags",
    "Pass",
    "PoolSpec",
    "ProcessSpawner",
    "Provisioner",
    "ProvisionerError",
    "Reaped",
    "Reaper",
    "Sealer",
    "SpecError",
    "State",
    "World",
    "agent_name",
    "agent_pids",
    "controller_from_env",
    "default_provisioners",
    "effective_size",
    "external_name",
    "list_classes",
    "list_clusters",
    "list_pools",
    "parse_class",
    "parse_cluster",
    "parse_duration",
    "parse_pool",
    "present_class",
    "present_cluster",
    "present_pool",
    "registered_labels",
    "runs_in_server",
    "split_document",
]
