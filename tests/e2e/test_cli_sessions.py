"""`a2a-broker sessions ...` in a subprocess against a real broker, and the Python client's
session methods."""

from __future__ import annotations

import json

import pytest
from a2a_broker_client import BrokerClient, SessionStatus
from a2a_broker_client.errors import FailedPreconditionError

from tests.e2e.test_cli_agents import cli


async def test_create_list_show_close_and_cancel_from_the_command_line(broker):
    r = await cli(
        broker.address, "sessions", "create", "Q3 report", "--id", "q3", "--label", "team=finance",
        "--context", '{"goal": "report"}', "--max-tasks", "5",
    )  # fmt: skip
    assert (r.rc, r.out.strip()) == (0, "q3"), r.err
    async with BrokerClient(broker.address) as client:
        await client.register("w", capabilities=["sum"])
        task = (await client.submit("add", required_capabilities=["sum"], session_id="q3")).task
        s = await client.get_session("q3")
        assert (s.name, s.labels, s.context, s.max_tasks) == (
            "Q3 report",
            {"team": "finance"},
            {"goal": "report"},
            5,
        )
        assert s.status is SessionStatus.ACTIVE and s.task_counts == {"ready": 1}

        r = await cli(broker.address, "sessions", "show", "q3")
        assert r.rc == 0 and "ready 1" in r.out and "team=finance" in r.out, r.err
        r = await cli(broker.address, "sessions", "list", "--json")
        assert [x["session_id"] for x in json.loads(r.out)] == ["q3"]

        r = await cli(broker.address, "sessions", "close", "q3", "--summary", "all in")
        assert (r.rc, r.out.split()) == (0, ["q3", "active"]), r.err  # its task is unfinished
        (a,) = await client.claim("w")
        await client.complete(a.task.task_id, "w", a.attempt, b"42")
        done = await client.get_session("q3")
        assert done.status is SessionStatus.COMPLETED and done.summary == "all in" and done.progress == 1.0
        with pytest.raises(FailedPreconditionError, match="is completed"):
            await client.submit("late", session_id="q3")

        other = await client.create_session("scratch", initiated_by="planner")
        await client.submit("wait", required_capabilities=["nobody"], session_id=other.session_id)
        r = await cli(broker.address, "sessions", "cancel", other.session_id, "--reason", "not needed")
        assert r.rc == 0 and "cancelled; 1 task(s) cancelled" in r.out, r.err
        page = await client.list_sessions(status="cancelled")
        assert [x.session_id for x in page.items] == [other.session_id]
        assert page.items[0].status_reason == "not needed"
        assert task.spec.session_id == "q3"

    r = await cli(broker.address, "sessions", "show", "nope")
    assert r.rc == 1 and "NOT_FOUND" in r.err
    r = await cli(broker.address, "sessions", "create", "--label", "novalue")
    assert r.rc == 2 and "KEY=VALUE" in r.err
