"""Tables of the ephemeral-cluster lifecycle: classes, pools, clusters (requests and pool members), their
sealed credentials and the controller's lease. Owned by ``shoal.clusters``; queries in ``_clusters.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shoal.store._models import Base


class ClusterClassRow(Base):
    """An ``EphemeralClusterClass``: the admin-owned template (provisioner, parameters, limits)."""

    __tablename__ = "cluster_classes"
    __table_args__ = (UniqueConstraint("env_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    resource_version: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClusterPoolRow(Base):
    """An ``EphemeralClusterPool``: warm spares of one class."""

    __tablename__ = "cluster_pools"
    __table_args__ = (UniqueConstraint("env_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resource_version: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClusterRow(Base):
    """An ``EphemeralCluster``: a request, or a member of a pool. ``spec`` and ``status`` are the API
    shapes; the columns beside them are what the controller and the pools query on."""

    __tablename__ = "clusters"
    __table_args__ = (
        UniqueConstraint("env_id", "name"),
        Index("ix_clusters_due", "finished", "next_reconcile_at"),
        Index("ix_clusters_pool_state", "member_of", "pool_state"),
        Index("ix_clusters_claimed_by", "claimed_by"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the uid, in every ownership tag
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    class_name: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phase: Mapped[str] = mapped_column(String(16), default="Pending")
    external_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    teardown: Mapped[bool] = mapped_column(Boolean, default=False)  # the user's signal (spec.teardown)
    deletion_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    finished: Mapped[bool] = mapped_column(Boolean, default=False)  # Deprovisioned/Failed: nothing outside
    member_of: Mapped[str | None] = mapped_column(String(63), nullable=True)  # pool name of a spare
    pool_state: Mapped[str | None] = mapped_column(
        String(16), nullable=True
    )  # provisioning|available|claimed
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)  # uid of the claiming request
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    next_reconcile_at: Mapped[datetime]
    resource_version: Mapped[int] = mapped_column(BigInteger, default=1)
    created_by: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # token scope of the requester
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ClusterCredentialRow(Base):
    """The hand-over kubeconfig of a cluster, sealed; deleted (revoked) when teardown starts."""

    __tablename__ = "cluster_credentials"
    cluster_id: Mapped[str] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    deliveries: Mapped[int] = mapped_column(BigInteger, default=0)


class ControllerLeaseRow(Base):
    """Single writer: the controller that holds this row (until ``expires_at``) reconciles."""

    __tablename__ = "cluster_controller_lease"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
