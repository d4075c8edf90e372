"""The broker's A2A agent card: the broker as one A2A agent whose skills are the capabilities of
its registered agents (those not offline), served at ``/.well-known/agent-card.json`` and by
``GetExtendedAgentCard``. Built on each request, so it follows agents as they come and go."""

from __future__ import annotations

from a2a.types import a2a_pb2 as a2a

from .. import __version__
from ..config import Settings
from ..core.registry import Registry
from ..models.agents import AgentFilter, AgentStatus

WELL_KNOWN_PATH = "/.well-known/agent-card.json"
# The broker's own skill, always on the card (the specification requires at least one): a message
# naming it is answered at once by the broker with the skills of the registered agents.
DIRECTORY_SKILL = "a2a-broker.directory"
MODES = ["text/plain", "application/json"]
PROTOCOL_VERSION = "1.0"


class Card:
    def __init__(self, settings: Settings, registry: Registry, grpc_address: str) -> None:
        self.settings = settings
        self.registry = registry
        self.grpc_address = grpc_address  # host:port the gateway is reached at

    async def offered(self) -> dict[str, list[str]]:
        """Each capability of a registered agent that is not offline -> the agents offering it."""
        offered: dict[str, list[str]] = {}
        after: str | None = None
        while True:
            agents, after = await self.registry.list(AgentFilter(page_size=1000, after=after))
            for agent in agents:
                if agent.status is AgentStatus.OFFLINE:
                    continue
                for cap in agent.capabilities:
                    offered.setdefault(cap, []).append(agent.agent_id)
            if after is None:
                return offered

    async def build(self) -> a2a.AgentCard:
        s = self.settings
        card = a2a.AgentCard(
            name="a2a-broker",
            description=(
                "A message broker for AI agents. Each skill is a capability of the agents registered"
                ' with it; a message naming a skill in its metadata ("skill") becomes a durable task'
                " that one of those agents runs."
            ),
            version=__version__,
            default_input_modes=MODES,
            default_output_modes=MODES,
        )
        scheme = "grpcs" if s.tls_cert else "grpc"
        card.supported_interfaces.add(
            url=f"{scheme}://{self.grpc_address}", protocol_binding="GRPC", protocol_version=PROTOCOL_VERSION
        )
        card.capabilities.streaming = True
        card.capabilities.push_notifications = False
        card.capabilities.extended_agent_card = True
        if s.auth != "none":
            card.security_schemes["bearer"].http_auth_security_scheme.scheme = "Bearer"
            card.security_schemes["bearer"].http_auth_security_scheme.description = (
                "a broker token (a2a-broker tokens create) or a JWT, as 'authorization: Bearer <token>'"
                if s.auth == "token"
                else "a JWT from the configured issuer, as 'authorization: Bearer <token>'"
            )
            card.security_requirements.add().schemes["bearer"].SetInParent()
        if s.tls_client_ca:
            card.security_schemes[
                "mtls"
            ].mtls_security_scheme.description = "a client certificate signed by the broker's client CA"
            card.security_requirements.add().schemes["mtls"].SetInParent()
        card.skills.add(
            id=DIRECTORY_SKILL,
            name="Directory",
            description="Answered by the broker itself: the skills of its registered agents, and who"
            " offers each.",
            tags=["directory"],
            input_modes=MODES,
            output_modes=["text/plain"],
        )
        for cap, agents in sorted((await self.offered()).items()):
            shown = ", ".join(agents[:5]) + (f" and {len(agents) - 5} more" if len(agents) > 5 else "")
            card.skills.add(
                id=cap,
                name=cap,
                description=f"Run by the registered agent(s) {shown}.",
                tags=[cap],
                input_modes=MODES,
                output_modes=MODES,
            )
        return card
