"""Wire models shared by server, agent and client: the agent channel and the REST API shapes."""

from shoal.protocol._agent import (
    PROTOCOL_VERSION,
    Accepted,
    Ack,
    AgentMessage,
    Assignment,
    Control,
    Declined,
    EventBatch,
    Heartbeat,
    HeldExecution,
    Hello,
    ResourcesChanged,
    ServerMessage,
    Welcome,
    agent_message_adapter,
    server_message_adapter,
)

__all__ = [
    "PROTOCOL_VERSION",
    "Accepted",
    "Ack",
    "AgentMessage",
    "Assignment",
    "Control",
    "Declined",
    "EventBatch",
    "Heartbeat",
    "HeldExecution",
    "Hello",
    "ResourcesChanged",
    "ServerMessage",
    "Welcome",
    "agent_message_adapter",
    "server_message_adapter",
]
