"""shoal.agent: the agent daemon — channel to the server, durable outbox, resource cache, executor loop."""

from shoal.agent._agent import Agent, AgentConfig
from shoal.agent._outbox import Outbox

__all__ = ["Agent", "AgentConfig", "Outbox"]
