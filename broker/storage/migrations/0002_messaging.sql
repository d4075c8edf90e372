-- Messages: one row per recipient copy (a broadcast makes one per recipient),
-- so each recipient acks, retries and dead-letters its own copy.

CREATE TABLE a2a_messages (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,   -- enqueue order
    message_id        TEXT NOT NULL UNIQUE,
    send_id           TEXT NOT NULL,
    sender_id         TEXT NOT NULL REFERENCES agents (agent_id),
    -- NULL only for an anycast copy not yet taken by an agent.
    recipient_id      TEXT REFERENCES agents (agent_id),
    target_kind       TEXT NOT NULL CHECK (target_kind IN ('direct', 'broadcast', 'anycast')),
    target_capability TEXT,
    message_type      TEXT NOT NULL DEFAULT '' CHECK (length(message_type) <= 128),
    payload           BLOB NOT NULL,
    content_type      TEXT NOT NULL DEFAULT '' CHECK (length(content_type) <= 128),
    priority          INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    correlation_id    TEXT CHECK (correlation_id IS NULL OR length(correlation_id) <= 128),
    conversation_id   TEXT CHECK (conversation_id IS NULL OR length(conversation_id) <= 128),
    headers           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(headers)),
    idempotency_key   TEXT CHECK (idempotency_key IS NULL OR length(idempotency_key) <= 128),
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'processed', 'failed', 'expired')),
    attempt           INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    created_at        INTEGER NOT NULL,
    deliver_after     INTEGER NOT NULL,
    expires_at        INTEGER,
    delivered_at      INTEGER,
    ack_deadline      INTEGER,
    processed_at      INTEGER,
    last_error        TEXT,
    CHECK (target_kind = 'anycast' OR recipient_id IS NOT NULL),
    CHECK (status != 'delivered' OR (recipient_id IS NOT NULL AND ack_deadline IS NOT NULL)),
    CHECK (attempt <= max_attempts)
);

-- Next message for an agent: its pending copies, highest priority, then oldest.
CREATE INDEX idx_messages_next ON a2a_messages (recipient_id, priority DESC, seq)
    WHERE status = 'pending';
-- Next anycast message for a capability.
CREATE INDEX idx_messages_anycast_next ON a2a_messages (target_capability, priority DESC, seq)
    WHERE status = 'pending' AND recipient_id IS NULL;
-- Sweeper: deliveries whose ack deadline passed.
CREATE INDEX idx_messages_ack_deadline ON a2a_messages (ack_deadline) WHERE status = 'delivered';
-- Sweeper: messages past their expiry.
CREATE INDEX idx_messages_expiry ON a2a_messages (expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('pending', 'delivered');
-- Sweeper: release a stream's or an agent's unacked deliveries.
CREATE INDEX idx_messages_delivered_to ON a2a_messages (recipient_id) WHERE status = 'delivered';
-- Reads and retention.
CREATE INDEX idx_messages_status ON a2a_messages (status, seq);
CREATE INDEX idx_messages_conversation ON a2a_messages (conversation_id, seq) WHERE conversation_id IS NOT NULL;
CREATE INDEX idx_messages_correlation ON a2a_messages (correlation_id, seq) WHERE correlation_id IS NOT NULL;
CREATE INDEX idx_messages_sender ON a2a_messages (sender_id, seq);
CREATE INDEX idx_messages_send ON a2a_messages (send_id);
CREATE INDEX idx_messages_retention ON a2a_messages (processed_at) WHERE status IN ('processed', 'expired');

-- Idempotency: one send per (sender, key).
CREATE TABLE message_sends (
    sender_id       TEXT NOT NULL REFERENCES agents (agent_id),
    idempotency_key TEXT NOT NULL,
    send_id         TEXT NOT NULL,
    message_ids     TEXT NOT NULL CHECK (json_valid(message_ids)),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (sender_id, idempotency_key)
) WITHOUT ROWID;
