-- #23.3: the tables every message and task rewrites get vacuumed as they churn, not once a fifth
-- of them is dead (the default scale factor 0.2): a queue table turns over its rows all day, and
-- the dead versions left behind are what claims and the partial "pending" indexes wade through
-- (latency that grew over a run, a2a_messages ending with tens of thousands of dead tuples).
-- Vacuum starts after 1% of the rows (or 1,000) changed, without the cost-based pauses; inserts
-- alone also trigger it (keeps the visibility map fresh for the index-only reads).
-- fillfactor leaves room on each page for a row's new version: an UPDATE that changes no indexed
-- column (agents' current_task_count on every lease, a delivery's attempt count) stays on its page
-- as a HOT update, with no new index entries. A message's or task's status change cannot be HOT
-- (status is in the partial indexes' predicates): there, prompt vacuuming is what holds.
ALTER TABLE a2a_messages SET (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_insert_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE tasks SET (
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_insert_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE agents SET (
    fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 200,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE message_sends SET (
    autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
