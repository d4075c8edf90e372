"""The broker's A2A agent cards, built on each request so that they follow agents as they come
and go.

- The broker's own card (``/.well-known/agent-card.json``, and ``GetExtendedAgentCard``): the
  broker as one A2A agent whose skills are the capabilities of its registered agents (those
  exposed to A2A and not offline). A message to it names its skill in the metadata (``skill``),
  or goes to ``--a2a-default-skill``, or to the only skill when there is one.
- A card per skill (``/a2a/<capability>/.well-known/agent-card.json``) and per named agent
  (``/a2a/@<agent id>/...``): an A2A agent of its own, so that a standard client pointed at that
  URL needs no metadata. Its gRPC interface carries the same name as its ``tenant``.

Each card lists its three interfaces, JSON-RPC first: JSON-RPC 2.0 and HTTP+JSON at ``http(s)://``
URLs on the HTTP listener, and gRPC at the broker's ``host:port`` (what gRPC clients dial as it
is), for A2A 1.0 and again for 0.3. Without an HTTP listener only gRPC is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from a2a.types import a2a_pb2 as a2a

from .. import __version__
from ..config import Settings
from ..core.registry import Registry
from ..domain import a2a_tasks as rules
from ..domain.capacity import ANY
from ..errors import NotFound
from ..models.agents import Agent, AgentStatus

WELL_KNOWN_PATH = "/.well-known/agent-card.json"
TARGET_PREFIX = "/a2a/"  # /a2a/<capability>/ and /a2a/@<agent id>/: an A2A agent each
# The broker's own skill, always on its card (the specification requires at least one): a message
# naming it is answered at once by the broker with the skills of the registered agents.
DIRECTORY_SKILL = "a2a-broker.directory"
MODES = ["text/plain", "application/json"]
PROTOCOL_VERSION = "1.0"
# A2A v0.3 clients are served too (a2a-sdk's compatibility layer): the same JSON-RPC endpoints,
# HTTP+JSON under /v1/, gRPC as a2a.v1.A2AService; the card then also carries v0.3's url and
# preferredTransport (a2a-sdk adds them for the first v0.3 interface).
LEGACY_VERSION = "0.3"


def _offers(agent: Agent) -> bool:
    return agent.status is not AgentStatus.OFFLINE and rules.offers_a2a(agent.exposure)


def target_path(target: str) -> str:
    """The URL path of the A2A agent for a skill or (``@id``) a named agent, with no trailing slash."""
    return TARGET_PREFIX + quote(target, safe="@")


@dataclass(frozen=True)
class Where:
    """Where the cards say the bindings are: the HTTP listener's base URL (``scheme://host:port``,
    none without a listener) and the gRPC port's ``host:port``."""

    http: str | None
    grpc: str


class Card:
    def __init__(self, settings: Settings, registry: Registry, where: Where) -> None:
        self.settings = settings
        self.registry = registry
        self.where = where

    async def offered(self) -> dict[str, list[Agent]]:
        """Each skill of a registered agent exposed to A2A and not offline -> the agents offering it."""
        offered: dict[str, list[Agent]] = {}
        for agent in await self.registry.every():
            if _offers(agent):
                for skill in agent.capabilities:
                    if skill != ANY:  # "takes tasks that name no capability": not a skill
                        offered.setdefault(skill, []).append(agent)
        return offered

    async def offers(self, skill: str) -> bool:
        """Whether a registered agent exposed to A2A and not offline offers ``skill`` (reads only
        the agents with that capability)."""
        return any(_offers(a) for a in await self.registry.every(skill))

    def target_urls(self, skills: list[str]) -> str:
        """Where each skill's own A2A agent is (for a message that names none)."""
        base = self.where.http
        if base is None:
            return ", ".join(skills)
        return ", ".join(f"{base}{target_path(s)}/" for s in skills)

    def _interfaces(self, card: a2a.AgentCard, where: Where, target: str) -> None:
        for version in (PROTOCOL_VERSION, LEGACY_VERSION):  # 1.0 first: clients take the newest
            if where.http is not None:
                root = where.http + (target_path(target) if target else "")
                for url, binding in ((root + "/", "JSONRPC"), (root, "HTTP+JSON")):
                    card.supported_interfaces.add(url=url, protocol_binding=binding, protocol_version=version)
            card.supported_interfaces.add(
                url=where.grpc, protocol_binding="GRPC", protocol_version=version, tenant=target
            )

    def _base(self, name: str, description: str, where: Where, target: str) -> a2a.AgentCard:
        s = self.settings
        card = a2a.AgentCard(
            name=name,
            description=description,
            version=__version__,
            default_input_modes=MODES,
            default_output_modes=MODES,
        )
        self._interfaces(card, where, target)
        card.capabilities.streaming = True
        card.capabilities.push_notifications = True
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
        return card

    async def build(self, where: Where | None = None) -> a2a.AgentCard:
        """The broker's own card."""
        card = self._base(
            "a2a-broker",
            "A message broker for AI agents. Each skill is a capability of the agents registered with"
            ' it; a message naming a skill in its metadata ("skill"), or sent to that skill\'s own'
            " agent URL, becomes a durable task that one of those agents runs.",
            where or self.where,
            "",
        )
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
            _skill(card, cap, agents)
        return card

    async def build_for(self, target: str, where: Where | None = None) -> a2a.AgentCard | None:
        """The card of one skill's agent, or (``@id``) of one named agent; None when nobody
        registered and exposed to A2A offers it now."""
        where = where or self.where
        if target.startswith("@"):
            agent_id = target[1:]
            try:
                agent = await self.registry.get(agent_id)
            except NotFound:
                return None
            if not _offers(agent):
                return None
            card = self._base(
                agent.name or agent_id,
                f"The agent {agent_id!r}, reached through the a2a-broker: each message becomes a"
                " durable task that this agent runs.",
                where,
                target,
            )
            for cap in agent.capabilities:
                if cap != ANY:
                    _skill(card, cap, [agent])
            if not agent.capabilities:
                card.skills.add(id=target, name=agent_id, description=f"Whatever {agent_id} does.")
            return card
        if target == ANY:
            return None
        agents = [a for a in await self.registry.every(target) if _offers(a)]
        if not agents:
            return None
        described = next(
            (a.capability_descriptions[target] for a in agents if target in a.capability_descriptions), ""
        )
        card = self._base(
            target,
            described
            or f"The skill {target!r} of the agents registered with an a2a-broker: each"
            " message becomes a durable task that one of them runs.",
            where,
            target,
        )
        _skill(card, target, agents)
        return card


def _skill(card: a2a.AgentCard, cap: str, agents: list[Agent]) -> None:
    ids = [a.agent_id for a in agents]
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    described = next((a.capability_descriptions[cap] for a in agents if cap in a.capability_descriptions), "")
    card.skills.add(
        id=cap,
        name=cap,
        description=f"{described} (run by {shown})" if described else f"Run by {shown}.",
        tags=[cap],
        input_modes=MODES,
        output_modes=MODES,
    )
