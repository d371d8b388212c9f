"""Messages of the agent channel: one WebSocket per agent, JSON text frames, one message per frame.

The agent dials out to ``/v1/agent/connect`` with ``Authorization: Bearer <agent token>``. The first
frame is the agent's ``hello``; the server answers ``welcome`` (with the last acknowledged seq of every
execution the agent says it holds), then both sides stream. Execution events travel in ``events``
batches and are acknowledged by ``ack`` once durably stored; the agent's outbox drops them only then.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

PROTOCOL_VERSION = 1


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ------------------------------------------------------------------------------------------ agent → server


class HeldExecution(_Message):
    """An execution the agent still holds (running, or finished with events not yet acknowledged)."""

    execution_id: str
    next_seq: int = 1  # the seq the agent will send next; events below it are in its outbox or acked


class Hello(_Message):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    capabilities: list[str] = Field(default_factory=list)  # runtimes it has: "local", "kubernetes"
    version: str = ""
    executions: list[HeldExecution] = Field(default_factory=list)
    max_concurrent: int = 4


class Heartbeat(_Message):
    type: Literal["heartbeat"] = "heartbeat"
    running: list[str] = Field(default_factory=list)


class EventBatch(_Message):
    """Consecutive events of one execution (``ExecutionEvent.to_dict()`` each), ascending seq."""

    type: Literal["events"] = "events"
    execution_id: str
    events: list[dict[str, Any]]


class Accepted(_Message):
    type: Literal["accepted"] = "accepted"
    execution_id: str
    namespace: str | None = None


class Declined(_Message):
    type: Literal["declined"] = "declined"
    execution_id: str
    reason: str


AgentMessage = Annotated[Hello | Heartbeat | EventBatch | Accepted | Declined, Field(discriminator="type")]
# mypy cannot see a union through Annotated; the adapter's element type says what it yields.
agent_message_adapter: TypeAdapter[Hello | Heartbeat | EventBatch | Accepted | Declined] = TypeAdapter(
    AgentMessage  # type: ignore[arg-type]
)

# ------------------------------------------------------------------------------------------ server → agent


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    agent_id: str
    environment: str
    heartbeat_interval_s: float = 5.0
    resources_revision: int = 0
    acked: dict[str, int] = Field(default_factory=dict)  # execution id -> last acknowledged seq (0: none)
    forget: list[str] = Field(default_factory=list)  # executions the server has finalised: drop them


class Ack(_Message):
    type: Literal["ack"] = "ack"
    execution_id: str
    seq: int  # every event with seq <= this is stored


class Assignment(_Message):
    """Everything an agent needs to run an execution; the agent compiles it into the same Plan."""

    type: Literal["assign"] = "assign"
    execution_id: str
    name: str
    number: int
    group_id: str
    workflow: dict[str, Any]  # the TestWorkflow document as stored
    templates: dict[str, dict[str, Any]] = Field(default_factory=dict)  # name -> template document
    config: dict[str, str] = Field(default_factory=dict)  # run-time config, sensitive values included
    tags: dict[str, str] = Field(default_factory=dict)
    scheduled_at: str = ""
    running_context: dict[str, Any] = Field(default_factory=dict)
    organization: str = ""
    environment: str = ""
    parent_execution_ids: list[str] = Field(default_factory=list)
    # Short-lived token with the run rights of whoever started the execution (for `execute` steps that
    # start child executions through the control plane); revoked when the execution ends.
    execution_token: str = ""


class Control(_Message):
    type: Literal["abort", "cancel"]
    execution_id: str


class ResourcesChanged(_Message):
    type: Literal["resources"] = "resources"
    revision: int


ServerMessage = Annotated[
    Welcome | Ack | Assignment | Control | ResourcesChanged, Field(discriminator="type")
]
server_message_adapter: TypeAdapter[Welcome | Ack | Assignment | Control | ResourcesChanged] = TypeAdapter(
    ServerMessage  # type: ignore[arg-type]
)
