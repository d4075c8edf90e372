"""Settings: one frozen object, from defaults, ``A2A_BROKER_*`` variables and flags.

Every field ``x_y`` is read from the environment variable ``A2A_BROKER_X_Y``
and the flag ``--x-y`` (the flag wins). ``a2a-broker serve --help`` lists them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import BrokerError

ENV_PREFIX = "A2A_BROKER_"


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL or bare path (``--db``), or None for another scheme.

    As SQLAlchemy reads them: ``sqlite:///data/broker.db`` is relative to the working directory,
    ``sqlite:////var/lib/broker.db`` absolute, ``sqlite://`` (or ``sqlite:///:memory:``) in memory.
    (Here, a leaf module, so that the settings check ``--db`` without importing the storage layer;
    ``broker.storage`` re-exports it.)
    """
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if rest and not rest.startswith("/"):
            raise BrokerError(
                f"{url!r} names a host, which SQLite has none of: write sqlite:///relative/path "
                "or sqlite:////absolute/path"
            )
        return rest[1:] or ":memory:"
    if "://" in url:
        return None
    return url


def address_problem(address: str, allow_port_0: bool = False) -> str | None:
    """What is wrong with a ``host:port`` address (``[v6]:port`` too), or None."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or host.endswith(":") and not host.startswith("["):
        return f"{address!r} needs a port: HOST:PORT, e.g. 127.0.0.1:50051"
    if host.startswith("[") != host.endswith("]"):
        return f"{address!r} needs a port: HOST:PORT, e.g. [::1]:50051"
    if not port.isdigit() or not (0 if allow_port_0 else 1) <= int(port) <= 65535:
        low = 0 if allow_port_0 else 1
        return f"the port of {address!r} must be a number from {low} to 65535"
    return None


class Settings(BaseModel):
    """Everything the broker can be told at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field("127.0.0.1:50051", description="host:port to listen on (port 0: any free port)")
    db: str = Field(
        "./data/broker.db",
        description="storage: a SQLite file path, or a URL as SQLAlchemy writes it: sqlite:///relative/path, "
        "sqlite:////absolute/path; or postgresql://user:password@host:port/database (several brokers may "
        "share one PostgreSQL database)",
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        "FULL", description="SQLite synchronous pragma; FULL makes every yes survive a power cut"
    )
    sqlite_busy_timeout_ms: int = Field(5000, ge=0, description="how long SQLite waits on a lock")
    sqlite_readers: int = Field(2, ge=1, le=16, description="read connections beside the one writer")
    pg_readers: int = Field(2, ge=1, le=64, description="PostgreSQL read connections beside the one writer")
    pg_poll_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="PostgreSQL: how often idle streams look for work committed by other brokers, should "
        "a notification be lost (notifications wake them at once)",
    )
    write_batch_max: int = Field(512, ge=1, le=10000, description="most write jobs sharing one commit")
    heartbeat_interval_s: float = Field(10.0, gt=0, description="how often agents should heartbeat")
    liveness_timeout_s: float | None = Field(
        None, gt=0, description="silence before an agent is offline (default 3 x heartbeat interval)"
    )
    sweeper_period_s: float = Field(1.0, gt=0, description="how often the background sweeper runs")
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest gRPC request accepted")
    max_payload_bytes: int = Field(1024 * 1024, ge=1, description="largest message or task payload")
    ack_deadline_s: float = Field(30.0, gt=0, description="default time a subscriber has to ack")
    message_retention_s: float = Field(
        7 * 24 * 3600.0, ge=0, description="processed/expired messages are purged after this"
    )
    subject_retention_s: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        description="messages sent to subjects are kept this long for replays (Seek), then deleted with"
        " their deliveries",
    )
    task_retention_s: float = Field(7 * 24 * 3600.0, ge=0, description="finished tasks are purged after this")
    max_dependencies: int = Field(50, ge=1, description="most prerequisites per task")
    max_depth: int = Field(10, ge=1, description="deepest task tree (levels below the root)")
    default_lease_timeout_s: float = Field(60.0, gt=0, description="task lease timeout when unset")
    agent_retention_s: float = Field(
        7 * 24 * 3600.0, ge=0, description="agents offline longer than this are deregistered (0: never)"
    )
    agent_record_window_s: float = Field(
        86_400.0, gt=0, description="the window of an agent's performance record (tasks finished within it)"
    )
    route_by_record: bool = Field(
        False,
        description="push a newly ready task first to the able, waiting agent with the better record"
        " (success rate, then mean run time); others try a few milliseconds later",
    )
    default_max_run_time_s: float = Field(
        0.0, ge=0, description="the longest a task's attempt may run when the task sets none (0: no limit)"
    )
    task_aging_s: float = Field(
        300.0, gt=0, description="a waiting task gains one priority point per this many seconds"
    )
    task_urgency_weight: float = Field(
        10.0, ge=0, description="priority points a task gains as its deadline arrives"
    )
    task_urgency_horizon_s: float = Field(
        3600.0, gt=0, description="how long before its deadline a task's urgency starts rising"
    )
    shutdown_grace_s: float = Field(5.0, ge=0, description="time given to in-flight calls on shutdown")
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="broker processes sharing the gRPC port (SO_REUSEPORT), each a full broker on one"
        " PostgreSQL database; the first also serves the HTTP listener; one exiting stops them all (exit 1)",
    )
    # -- security (broker/security/) --------------------------------------------------------
    auth: Literal["none", "token", "jwt"] = Field(
        "none", description="how callers prove who they are: none, broker-issued tokens, or JWTs"
    )
    auth_cache_s: float = Field(
        5.0, ge=0, description="how long a verified token is trusted before it is checked again"
    )
    jwt_key_file: str | None = Field(None, description="jwt: a PEM public key (or HMAC secret) file")
    jwt_jwks_file: str | None = Field(None, description="jwt: a JWKS file (keys chosen by the token's kid)")
    jwt_issuer: str | None = Field(None, description="jwt: the required iss claim")
    jwt_audience: str | None = Field(None, description="jwt: the required aud claim")
    jwt_algorithms: str = Field("RS256,ES256,EdDSA", description="jwt: accepted algorithms, comma-separated")
    jwt_subject_claim: str = Field("sub", description="jwt: the claim naming the agent id (or id prefix*)")
    jwt_role_claim: str = Field("role", description="jwt: the claim naming the role (default agent)")
    reflection: bool | None = Field(
        None, description="serve gRPC reflection (default: on with --auth none, off otherwise)"
    )
    tls_cert: str | None = Field(None, description="PEM certificate chain: serve TLS (reloaded on change)")
    tls_key: str | None = Field(None, description="PEM private key of --tls-cert")
    tls_client_ca: str | None = Field(
        None, description="PEM CA bundle: require client certificates (mTLS); the subject CN names the agent"
    )
    insecure: bool = Field(
        False, description="allow a non-loopback address without authentication and TLS (warns hourly)"
    )
    quota_calls_per_s: float = Field(
        1000.0, ge=0, description="calls per second per subject (bursts of twice that; 0: no limit)"
    )
    quota_bytes_per_s: float = Field(
        64 * 1024 * 1024.0, ge=0, description="request bytes per second per subject (0: no limit)"
    )
    quota_streams: int = Field(100, ge=0, description="open streams per subject (0: no limit)")
    quota_pending_messages: int = Field(
        100_000,
        ge=0,
        description="pending messages held for one agent before Sends to it are refused (a fair share each)",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto", description="the event loop: uvloop where installed (auto), or asyncio's own"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="json: structured JSON lines; text: text lines (key=value for the same fields);"
        " auto: text when stderr is a terminal, JSON otherwise",
    )
    log_level_libs: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING", description="log level of the libraries (grpc, aiosqlite, psycopg, aiohttp, asyncio, mcp)"
    )
    access_log: bool = Field(
        False, description="log one line per RPC: method, subject, peer, status, duration"
    )
    # -- observability (broker/observability/) ----------------------------------------------
    http_address: str = Field(
        "127.0.0.1:8080",
        description="host:port of the HTTP listener (/metrics, /healthz, /readyz, the console); off: none",
    )
    metrics_token: str | None = Field(
        None, description="a bearer token that may read /metrics (besides admin tokens when auth is on)"
    )
    metrics_top_n: int = Field(
        20, ge=0, le=1000, description="per-agent and per-capability backlog series kept (the rest summed)"
    )
    console_refresh_s: float = Field(
        2.0, ge=0.05, le=60, description="how often the web console's live view is refreshed"
    )
    tracing: Literal["off", "on"] = Field(
        "off",
        description="OpenTelemetry spans for send, deliver, ack, submit, assign, complete"
        " (the [tracing] extra; exporter from OTEL_TRACES_EXPORTER)",
    )
    broker_id: str = Field(
        "",
        description="this broker's name among its peers (default: its address); its link on each"
        " peer is the agent broker.<id>",
    )
    peers: str = Field(
        "",
        description="federation: peer brokers to join as an agent, NAME=HOST:PORT,... (their tasks"
        " for this broker's agents' capabilities run here)",
    )
    peer_token: str | None = Field(None, description="bearer token this broker presents to its peers")
    peer_ca: str | None = Field(None, description="PEM CA of the peers' TLS certificates (turns TLS on)")
    federation_refresh_s: float = Field(
        5.0, gt=0, description="how often a peer link re-reports this broker's capabilities and free capacity"
    )
    federation_extend_s: float = Field(
        10.0, gt=0, description="how often a peer link extends the peer's lease of a task running here"
    )
    a2a_gateway: Literal["auto", "on", "off"] = Field(
        "auto",
        description="serve the Agent2Agent protocol (lf.a2a.v1.A2AService, and the agent card on the"
        " HTTP listener); auto: when the [a2a] extra (a2a-sdk) is installed",
    )
    mcp: Literal["auto", "on", "off"] = Field(
        "auto",
        description="serve the Model Context Protocol at /mcp on the HTTP listener (LLM hosts: the"
        " broker's tools, each call made with the request's bearer token); auto: when the [mcp] extra"
        " (the MCP SDK) and the Python client are installed",
    )
    a2a_default_skill: str = Field(
        "",
        description="the skill a message to the broker's own A2A agent goes to when it names none"
        " (default: refused, listing each skill's own agent URL, unless only one skill is offered)",
    )
    a2a_push_max_attempts: int = Field(
        10, ge=1, le=100, description="POSTs of one A2A push notification before it is dead-lettered"
    )
    a2a_push_backoff_s: float = Field(
        1.0,
        gt=0,
        le=300,
        description="wait before the second POST of an A2A push notification (doubling, at most 5 min)",
    )
    a2a_push_allow: str = Field(
        "",
        description="A2A push webhooks the broker may call although they resolve to a loopback,"
        " private or link-local address: CIDRs or host names, comma-separated",
    )
    metrics_census_s: float = Field(
        5.0, ge=0, description="how long the stored counts behind /metrics' gauges are reused"
    )

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if value.startswith("unix:"):
            return value
        problem = address_problem(value, allow_port_0=True)
        if problem:
            raise PydanticCustomError("address", problem)
        return value

    @field_validator("http_address")
    @classmethod
    def _http_host_port(cls, value: str) -> str:
        if value.lower() == "off":
            return "off"
        problem = address_problem(value, allow_port_0=True)
        if problem:
            raise PydanticCustomError("http_address", problem)
        return value

    @field_validator("db")
    @classmethod
    def _storage_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme in ("postgresql", "postgres"):
            return value
        if scheme not in ("", "sqlite"):
            raise PydanticCustomError(
                "db",
                "unknown scheme '{scheme}': use a SQLite path, a sqlite:///path URL or a postgresql:// URL",
                {"scheme": scheme},
            )
        try:
            sqlite_path(value)
        except BrokerError as exc:
            raise PydanticCustomError("db", "{problem}", {"problem": exc.message}) from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
        if self.auth == "jwt" and not (self.jwt_key_file or self.jwt_jwks_file):
            raise ValueError("--auth jwt needs --jwt-key-file or --jwt-jwks-file")
        return self

    @model_validator(mode="after")
    def _several_processes(self) -> Settings:
        if self.processes == 1:
            return self
        if sqlite_path(self.db) is not None:
            raise ValueError(
                "--processes above 1 needs PostgreSQL: a SQLite file takes one writer (its lock file refuses"
                " a second broker); give --db postgresql://... (see the README's PostgreSQL section)"
            )
        if self.address.startswith("unix:") or self.address.endswith(":0"):
            raise ValueError(
                "--processes above 1 share one port: give --address HOST:PORT with a port other than 0"
            )
        return self

    @property
    def reflection_on(self) -> bool:
        return self.auth == "none" and not self.tls_client_ca if self.reflection is None else self.reflection

    @model_validator(mode="after")
    def _default_liveness(self) -> Settings:
        if self.liveness_timeout_s is None:
            object.__setattr__(self, "liveness_timeout_s", 3 * self.heartbeat_interval_s)
        return self

    @property
    def liveness_timeout(self) -> float:
        assert self.liveness_timeout_s is not None
        return self.liveness_timeout_s

    @classmethod
    def env_name(cls, field: str) -> str:
        return ENV_PREFIX + field.upper()

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """Defaults, then the environment, then ``overrides`` (flags; None values are ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(cls.env_name(name))
            if raw not in (None, ""):
                values[name] = raw
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)
