"""The Python side of the Node.js interop tests, using the Python client.

Usage: python pyside.py ADDRESS COMMAND ARGS... ; prints one JSON document.
  send SENDER RECIPIENT JSON       register SENDER, send JSON to RECIPIENT -> {"message_id"}
  message ID                       -> {"status", "attempt", "payload"}
  submit TITLE CAPABILITY JSON     -> {"task_id"}
  wait-task ID TIMEOUT             wait until finished -> {"status", "result", "attempt", "agent"}
"""

from __future__ import annotations

import json
import sys

from a2a_broker_client import SyncBrokerClient


def main(address: str, command: str, *args: str) -> object:
    with SyncBrokerClient(address, timeout=30) as c:
        if command == "send":
            sender, recipient, payload = args
            c.register(sender, max_concurrent_tasks=1, agent_type="python-helper")
            return {"message_id": c.send(sender, recipient, json.loads(payload)).message_id}
        if command == "message":
            m = c.get_message(args[0])
            return {"status": m.status.value, "attempt": m.attempt, "payload": m.data}
        if command == "submit":
            title, capability, payload = args
            res = c.submit(
                title, payload=json.loads(payload), required_capabilities=[capability], submitted_by="python"
            )
            return {"task_id": res.task.task_id}
        if command == "wait-task":
            t = c.wait_for_task(args[0], timeout=float(args[1]))
            history = c.get_history(args[0])
            return {
                "status": t.status.value,
                "result": t.result_data,
                "attempt": t.attempt,
                "agent": next((h.actor for h in reversed(history) if h.to_status.value == "completed"), ""),
            }
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])), flush=True)
