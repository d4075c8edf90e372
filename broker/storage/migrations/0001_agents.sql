-- Agents, their capabilities, and orchestration sessions.
-- Times are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE agents (
    agent_id               TEXT PRIMARY KEY CHECK (length(agent_id) BETWEEN 1 AND 128),
    name                   TEXT NOT NULL CHECK (length(name) <= 256),
    agent_type             TEXT NOT NULL DEFAULT 'worker' CHECK (length(agent_type) BETWEEN 1 AND 64),
    capabilities           TEXT NOT NULL DEFAULT '[]'
                           CHECK (json_valid(capabilities) AND json_type(capabilities) = 'array'),
    max_concurrent_tasks   INTEGER NOT NULL CHECK (max_concurrent_tasks BETWEEN 1 AND 10000),
    -- Kept in the same transaction as every lease and release; the database
    -- itself refuses a count above the capacity.
    current_task_count     INTEGER NOT NULL DEFAULT 0
                           CHECK (current_task_count >= 0 AND current_task_count <= max_concurrent_tasks),
    endpoint               TEXT NOT NULL DEFAULT '' CHECK (length(endpoint) <= 512),
    labels                 TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(labels) AND json_type(labels) = 'object'),
    metadata               TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    -- 'deregistered' rows stay so that messages addressed to the agent keep
    -- their foreign key; the API reports them as not found.
    status                 TEXT NOT NULL DEFAULT 'available'
                           CHECK (status IN ('available', 'busy', 'maintenance', 'offline', 'deregistered')),
    reported_free_capacity INTEGER CHECK (reported_free_capacity IS NULL OR reported_free_capacity >= 0),
    registered_at          INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    last_heartbeat_at      INTEGER NOT NULL
);

-- ListAgents by status (paginated by id).
CREATE INDEX idx_agents_status ON agents (status, agent_id);
-- ListAgents by type.
CREATE INDEX idx_agents_type ON agents (agent_type, agent_id);
-- The sweeper's liveness scan: live agents whose heartbeat is older than the timeout.
CREATE INDEX idx_agents_liveness ON agents (last_heartbeat_at)
    WHERE status IN ('available', 'busy', 'maintenance');

-- One row per (agent, capability): capability filters and routing are index look-ups.
CREATE TABLE agent_capabilities (
    capability TEXT NOT NULL CHECK (length(capability) BETWEEN 1 AND 128),
    agent_id   TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    PRIMARY KEY (capability, agent_id)
) WITHOUT ROWID;
CREATE INDEX idx_agent_capabilities_agent ON agent_capabilities (agent_id);

-- Orchestration sessions group the tasks an orchestrator submits together.
CREATE TABLE orchestration_sessions (
    session_id  TEXT PRIMARY KEY CHECK (length(session_id) BETWEEN 1 AND 128),
    status      TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'completed', 'failed', 'cancelled', 'archived')),
    created_by  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX idx_sessions_status ON orchestration_sessions (status, created_at);
