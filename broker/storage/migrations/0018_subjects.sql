-- Topics (#26.1): messages sent to a subject, stored once, and named durable subscriptions, each
-- with one small row per message it matched (its delivery state: no payload).
--
-- Why delivery rows rather than a cursor per subscription: a subscription delivers in priority
-- order, redelivers one message while later ones go on, dead-letters, expires and schedules per
-- message, and orders per key; a cursor holds none of that. A delivery row costs a fan-out one
-- narrow row per matching subscription (the payload and headers stay in subject_messages), and
-- a claim, an ack or a release touches only rows of its own subscription, by index.

-- A subscription. Its filter is matched against each subject sent to, in memory (the broker's
-- subject index, broker/domain/subjects.py), kept in step with this table by `version` below.
CREATE TABLE subscriptions (
    subscription_id     INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 128),
    filter              TEXT NOT NULL CHECK (length(filter) BETWEEN 1 AND 256),
    ack_deadline_us     INTEGER NOT NULL CHECK (ack_deadline_us BETWEEN 1000000 AND 3600000000),
    max_attempts        INTEGER NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    -- How long a message waits here unacked (NULL: until the topic's retention).
    retention_us        INTEGER CHECK (retention_us IS NULL OR retention_us > 0),
    ordering            INTEGER NOT NULL DEFAULT 0 CHECK (ordering IN (0, 1)),
    dead_letter_subject TEXT CHECK (dead_letter_subject IS NULL OR length(dead_letter_subject) BETWEEN 1 AND 256),
    created_by          TEXT NOT NULL DEFAULT '' CHECK (length(created_by) <= 128),
    created_at          INTEGER NOT NULL
);

-- Bumped by every change of the subscriptions, in the same transaction: a send compares it with
-- the version its broker's subject index was built at, and matches from the table instead when
-- they differ (a subscription made or deleted meanwhile, here or by another broker).
CREATE TABLE subject_index_version (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    version   INTEGER NOT NULL
);
INSERT INTO subject_index_version (singleton, version) VALUES (1, 0);

-- A message sent to a subject, once, whatever the number of subscriptions it went to. Kept for
-- the topic's retention (A2A_BROKER_SUBJECT_RETENTION_S) for replays, then deleted with its
-- deliveries.
CREATE TABLE subject_messages (
    seq             INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE CHECK (length(message_id) BETWEEN 1 AND 128),
    subject         TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 256),
    sender_id       TEXT NOT NULL REFERENCES agents (agent_id),
    message_type    TEXT NOT NULL DEFAULT '' CHECK (length(message_type) <= 128),
    payload         BLOB NOT NULL,
    content_type    TEXT NOT NULL DEFAULT '' CHECK (length(content_type) <= 128),
    priority        INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    correlation_id  TEXT CHECK (correlation_id IS NULL OR length(correlation_id) BETWEEN 1 AND 128),
    conversation_id TEXT CHECK (conversation_id IS NULL OR length(conversation_id) BETWEEN 1 AND 128),
    headers         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(headers)),
    idempotency_key TEXT CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 128),
    ordering_key    TEXT CHECK (ordering_key IS NULL OR length(ordering_key) BETWEEN 1 AND 128),
    created_at      INTEGER NOT NULL,
    deliver_after   INTEGER,
    expires_at      INTEGER
);
-- A subject's messages (ListMessages by subject; a replay of a filter reads its literal prefix).
CREATE INDEX idx_subject_messages_subject ON subject_messages (subject, seq);
-- A replay from a time; the topic's retention.
CREATE INDEX idx_subject_messages_created ON subject_messages (created_at);

-- One subject message as one subscription holds it: its state only. The columns that say when a
-- message is due, what a delivery, an ack, a release or an expiry does, are named as
-- a2a_messages' are, so that the same rules (broker/domain/messages.py) run on both.
-- No foreign key to subject_messages: retention deletes the deliveries of the messages it
-- deletes, by subscription (the primary key), and such a key would need an index on
-- message_seq that every row of every fan-out would pay for.
CREATE TABLE subscription_deliveries (
    subscription_id INTEGER NOT NULL REFERENCES subscriptions (subscription_id),
    message_seq     INTEGER NOT NULL,
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 10),  -- the message's: the claim order
    -- The message's key, when the subscription orders by key (per-key ordering).
    ordering_key    TEXT CHECK (ordering_key IS NULL OR length(ordering_key) BETWEEN 1 AND 128),
    -- 1 while an earlier unfinished delivery with the same key is here (not claimable).
    blocked         INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),
    -- The agent it is delivered to (or was, for a dead letter); NULL while pending.
    recipient_id    TEXT CHECK (recipient_id IS NULL OR length(recipient_id) BETWEEN 1 AND 128),
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'processed', 'failed', 'expired')),
    attempt         INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts    INTEGER NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    deliver_after   INTEGER,
    expires_at      INTEGER,
    delivered_at    INTEGER,
    ack_deadline    INTEGER,
    processed_at    INTEGER,
    finished_at     INTEGER,
    last_error      TEXT CHECK (last_error IS NULL OR length(last_error) <= 2048),
    -- A dead letter already published to its subscription's dead_letter_subject.
    forwarded       INTEGER NOT NULL DEFAULT 0 CHECK (forwarded IN (0, 1)),
    PRIMARY KEY (subscription_id, message_seq),
    CHECK (status != 'delivered' OR (recipient_id IS NOT NULL AND ack_deadline IS NOT NULL)),
    CHECK (status NOT IN ('processed', 'expired') OR finished_at IS NOT NULL),
    CHECK (status = 'pending' OR attempt >= 1 OR status = 'expired'),
    CHECK (attempt <= max_attempts),
    CHECK (blocked = 0 OR ordering_key IS NOT NULL)
) WITHOUT ROWID;

-- A subscription's next deliveries: pending and claimable, highest priority, then oldest.
CREATE INDEX idx_deliveries_next ON subscription_deliveries (subscription_id, priority DESC, message_seq)
    WHERE status = 'pending' AND NOT blocked;
-- What is not acked yet, by subscription and key: per-key ordering (the earliest unfinished of a
-- key), a subscription's backlog and its oldest unacked message.
CREATE INDEX idx_deliveries_unacked ON subscription_deliveries (subscription_id, ordering_key, message_seq)
    WHERE status IN ('pending', 'delivered');
-- Dead letters by subscription, those still to publish to its dead-letter subject first.
CREATE INDEX idx_deliveries_dead ON subscription_deliveries (subscription_id, forwarded, message_seq)
    WHERE status = 'failed';
-- Sweeper: deliveries whose ack deadline passed; deliveries past their expiry; scheduled ones.
CREATE INDEX idx_deliveries_ack_deadline ON subscription_deliveries (ack_deadline) WHERE status = 'delivered';
CREATE INDEX idx_deliveries_expiry ON subscription_deliveries (expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('pending', 'delivered');
CREATE INDEX idx_deliveries_scheduled ON subscription_deliveries (deliver_after)
    WHERE deliver_after IS NOT NULL AND status = 'pending';
-- An agent's deliveries, released at once when it goes offline or deregisters.
CREATE INDEX idx_deliveries_delivered_to ON subscription_deliveries (recipient_id) WHERE status = 'delivered';
