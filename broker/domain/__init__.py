"""The broker's rules, pure: no I/O, no asyncio, no SQL execution.

Each module owns one concern and may import only ``broker.models``,
``broker.errors`` and the standard library, so that every backend calls the
same rules (inside its write transaction) instead of keeping a copy, and each
rule is unit-tested in milliseconds without a database.

Tasks:

- ``task_states``: the task state machine, its transitions and their reasons.
- ``submission``: what a Submit or SubmitGraph must satisfy (graph order, keys,
  cycles, limits, idempotency, depth, prerequisites) and the status a new task starts in.
- ``priority``: calculated priority (base + deadline urgency + aging) and the stored rank.
- ``retry``: what a failed attempt becomes (retry after which backoff, or failed).
- ``dependencies``: what becomes of a dependent when a prerequisite ends.
- ``leases``: whether a lease reference is current; idempotent repeats of Complete/Fail.
- ``capacity``: an agent's free capacity for new leases.

Messages:

- ``messages``: when a copy is due, claim order and pick, dead letter or release, ack
  deadlines, expiry, retention, ack and requeue refusals (with the SQL fragments that
  apply the same rules set-based, pinned to the Python rules by a test).
"""
