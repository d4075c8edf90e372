-- Sending before the recipient exists: a direct message may name an agent id that has not
-- registered yet (it waits, subject to its expiry, until that agent registers and subscribes), so
-- a2a_messages.recipient_id loses its foreign key to agents. The sender keeps its own.
-- SQLite cannot drop a constraint: the table is rebuilt (same columns, checks and indexes).

CREATE TABLE a2a_messages_new (
    -- Enqueue order. Not AUTOINCREMENT: that costs a sqlite_sequence write per
    -- insert, and order only has to hold among the rows that exist.
    seq               INTEGER PRIMARY KEY,
    message_id        TEXT NOT NULL UNIQUE CHECK (length(message_id) BETWEEN 1 AND 128),
    -- Shared by the copies of one broadcast; equal to message_id otherwise.
    send_id           TEXT NOT NULL,
    sender_id         TEXT NOT NULL REFERENCES agents (agent_id),
    -- NULL only for an anycast copy not (or no longer) taken by an agent. No foreign key: a
    -- message may wait for an agent id that has not registered yet.
    recipient_id      TEXT CHECK (recipient_id IS NULL OR length(recipient_id) BETWEEN 1 AND 128),
    target_kind       TEXT NOT NULL CHECK (target_kind IN ('direct', 'broadcast', 'anycast')),
    target_capability TEXT CHECK (target_capability IS NULL OR length(target_capability) BETWEEN 1 AND 128),
    message_type      TEXT NOT NULL DEFAULT '' CHECK (length(message_type) <= 128),
    payload           BLOB NOT NULL,
    content_type      TEXT NOT NULL DEFAULT '' CHECK (length(content_type) <= 128),
    priority          INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    correlation_id    TEXT CHECK (correlation_id IS NULL OR length(correlation_id) BETWEEN 1 AND 128),
    conversation_id   TEXT CHECK (conversation_id IS NULL OR length(conversation_id) BETWEEN 1 AND 128),
    headers           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(headers)),
    idempotency_key   TEXT CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 128),
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'processed', 'failed', 'expired')),
    -- Deliveries so far, the current one included.
    attempt           INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      INTEGER NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    created_at        INTEGER NOT NULL,
    -- NULL: deliverable at once. Otherwise not before this time (scheduled, or a nack delay).
    deliver_after     INTEGER,
    expires_at        INTEGER,
    delivered_at      INTEGER,
    ack_deadline      INTEGER,
    processed_at      INTEGER,
    -- When the copy reached a final state (processed or expired): retention counts from here.
    finished_at       INTEGER,
    last_error        TEXT CHECK (last_error IS NULL OR length(last_error) <= 2048),
    CHECK (target_kind = 'anycast' OR recipient_id IS NOT NULL),
    CHECK (target_kind = 'direct' OR target_kind = 'broadcast' OR target_capability IS NOT NULL),
    CHECK (status != 'delivered' OR (recipient_id IS NOT NULL AND ack_deadline IS NOT NULL)),
    CHECK (status NOT IN ('processed', 'expired') OR finished_at IS NOT NULL),
    CHECK (status = 'pending' OR attempt >= 1 OR status = 'expired'),
    CHECK (attempt <= max_attempts)
);

INSERT INTO a2a_messages_new (
    seq, message_id, send_id, sender_id, recipient_id, target_kind, target_capability,
    message_type, payload, content_type, priority, correlation_id, conversation_id, headers,
    idempotency_key, status, attempt, max_attempts, created_at, deliver_after, expires_at,
    delivered_at, ack_deadline, processed_at, finished_at, last_error
)
SELECT
    seq, message_id, send_id, sender_id, recipient_id, target_kind, target_capability,
    message_type, payload, content_type, priority, correlation_id, conversation_id, headers,
    idempotency_key, status, attempt, max_attempts, created_at, deliver_after, expires_at,
    delivered_at, ack_deadline, processed_at, finished_at, last_error
FROM a2a_messages;

DROP TABLE a2a_messages;
ALTER TABLE a2a_messages_new RENAME TO a2a_messages;

-- Next message for an agent: its pending copies, highest priority, then oldest.
CREATE INDEX idx_messages_next ON a2a_messages (recipient_id, priority DESC, seq)
    WHERE status = 'pending';
-- Next anycast message for a capability (copies no agent holds).
CREATE INDEX idx_messages_anycast_next ON a2a_messages (target_capability, priority DESC, seq)
    WHERE status = 'pending' AND recipient_id IS NULL;
-- Sweeper: deliveries whose ack deadline passed.
CREATE INDEX idx_messages_ack_deadline ON a2a_messages (ack_deadline) WHERE status = 'delivered';
-- Sweeper: messages past their expiry.
CREATE INDEX idx_messages_expiry ON a2a_messages (expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('pending', 'delivered');
-- Sweeper: scheduled messages that came due (to wake their subscribers after a restart).
CREATE INDEX idx_messages_scheduled ON a2a_messages (deliver_after)
    WHERE deliver_after IS NOT NULL AND status = 'pending';
-- An agent's deliveries, released at once when it goes offline or deregisters.
CREATE INDEX idx_messages_delivered_to ON a2a_messages (recipient_id) WHERE status = 'delivered';
-- Dead letters, oldest first.
CREATE INDEX idx_messages_dead ON a2a_messages (seq) WHERE status = 'failed';
-- Reads (ListMessages filters), each in enqueue order.
CREATE INDEX idx_messages_recipient ON a2a_messages (recipient_id, seq);
CREATE INDEX idx_messages_sender ON a2a_messages (sender_id, seq);
CREATE INDEX idx_messages_conversation ON a2a_messages (conversation_id, seq) WHERE conversation_id IS NOT NULL;
CREATE INDEX idx_messages_correlation ON a2a_messages (correlation_id, seq) WHERE correlation_id IS NOT NULL;
-- Retention: final copies by the time they became final.
CREATE INDEX idx_messages_retention ON a2a_messages (finished_at) WHERE status IN ('processed', 'expired');
