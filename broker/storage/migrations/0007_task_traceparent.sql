-- The W3C trace context a task was submitted under (the Submit call's traceparent metadata, or
-- the broker's submit span): handed to the worker with each assignment so that a trace follows
-- the task from the orchestrator to the agent and back. NULL when the submitter sent none.
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
