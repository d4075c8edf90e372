"""`a2a-broker a2a ...` in a subprocess: the CLI as an A2A client of the broker's gateway."""

from __future__ import annotations

import asyncio
import json

from a2a_broker_client import BrokerClient

from tests.e2e.test_cli_agents import cli

RESULT = "application/vnd.a2a-broker.result+json"


async def _serve_one(client: BrokerClient, state: str = "completed", **doc: object) -> dict:
    (a,) = await client.claim("summarizer", wait=20)
    body = {"state": state, **doc}
    await client.complete(
        a.task.task_id, "summarizer", a.attempt, json.dumps(body).encode(), result_content_type=RESULT
    )
    return json.loads(a.task.spec.payload)


async def test_send_get_cancel_and_card(broker):
    async with BrokerClient(broker.address, timeout=20) as c:
        r = await cli(
            broker.address, "agents", "register", "summarizer", "--capability", "summarize",
            "--exposure", "a2a", "--describe", "summarize=Shortens a text",
        )  # fmt: skip
        assert r.rc == 0, r.err
        r = await cli(broker.address, "a2a", "card")
        assert r.rc == 0, r.err
        skills = {s["id"]: s["description"] for s in json.loads(r.out)["skills"]}
        assert skills["summarize"].startswith("Shortens a text")

        worker = asyncio.ensure_future(
            _serve_one(c, artifacts=[{"artifactId": "a", "name": "summary", "parts": [{"text": "short"}]}])
        )
        r = await cli(broker.address, "a2a", "send", "a very long text", "--skill", "summarize")
        assert r.rc == 0, r.err
        turn = await worker
        assert turn["message"]["parts"][0]["text"] == "a very long text"
        task_id, state = r.out.split()[:2]
        assert state == "completed" and "summary: short" in r.out

        r = await cli(broker.address, "--json", "a2a", "get", task_id)
        assert r.rc == 0, r.err
        assert json.loads(r.out)["status"]["state"] == "TASK_STATE_COMPLETED"

        r = await cli(broker.address, "a2a", "send", "later", "--skill", "summarize", "--no-wait")
        assert r.rc == 0, r.err
        pending_id, state = r.out.split()[:2]
        assert state == "submitted"
        r = await cli(broker.address, "a2a", "cancel", pending_id)
        assert r.rc == 0, r.err
        assert r.out.split()[:2] == [pending_id, "canceled"]

        r = await cli(broker.address, "a2a", "get", "t-nope")
        assert r.rc == 1 and "not found" in r.err.lower()
        r = await cli(broker.address, "a2a", "send", "x", "--skill", "juggling")
        assert r.rc == 1 and "juggling" in r.err
