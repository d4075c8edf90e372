"""The broker's A2A agent card: the broker as one A2A agent whose skills are the capabilities of
its registered agents (those not offline), served at ``/.well-known/agent-card.json`` and by
``GetExtendedAgentCard``. Built on each request, so it follows agents as they come and go."""

from __future__ import annotations

from a2a.types import a2a_pb2 as a2a

from .. import __version__
from ..config import Settings
from ..core.registry import Registry
from ..domain import a2a_tasks as rules
from ..models.agents import Agent, AgentStatus

WELL_KNOWN_PATH = "/.well-known/agent-card.json"
# The broker's own skill, always on the card (the specification requires at least one): a message
# naming it is answered at once by the broker with the skills of the registered agents.
DIRECTORY_SKILL = "a2a-broker.directory"
MODES = ["text/plain", "application/json"]
PROTOCOL_VERSION = "1.0"


def _offers(agent: Agent) -> bool:
    return agent.status is not AgentStatus.OFFLINE and rules.offers_a2a(agent.exposure)


class Card:
    def __init__(self, settings: Settings, registry: Registry, grpc_address: str) -> None:
        self.settings = settings
        self.registry = registry
        self.grpc_address = grpc_address  # host:port the gateway is reached at

    async def offered(self) -> dict[str, list[Agent]]:
        """Each skill of a registered agent exposed to A2A and not offline -> the agents offering it."""
        offered: dict[str, list[Agent]] = {}
        for agent in await self.registry.every():
            if _offers(agent):
                for skill in agent.capabilities:
                    offered.setdefault(skill, []).append(agent)
        return offered

    async def offers(self, skill: str) -> bool:
        """Whether a registered agent exposed to A2A and not offline offers ``skill`` (reads only
        the agents with that capability)."""
        return any(_offers(a) for a in await self.registry.every(skill))

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
            ids = [a.agent_id for a in agents]
            shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
            described = next(
                (a.capability_descriptions[cap] for a in agents if cap in a.capability_descriptions), ""
            )
            card.skills.add(
                id=cap,
                name=cap,
                description=f"{described} (run by {shown})" if described else f"Run by {shown}.",
                tags=[cap],
                input_modes=MODES,
                output_modes=MODES,
            )
        return card
