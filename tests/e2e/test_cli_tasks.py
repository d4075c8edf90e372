"""`a2a-broker tasks ...` in a subprocess against a real broker."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from a2a_broker_client import BrokerClient, TaskStatus

from tests.conftest import ROOT
from tests.e2e.test_cli_agents import cli, cli_env


@pytest.fixture
async def client(broker):
    async with BrokerClient(broker.address) as c:
        # "*": also the tasks that require no capability
        await c.register("w", max_concurrent_tasks=5, capabilities=["py", "*"])
        yield c


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


async def test_submit_get_list(broker, client):
    r = await cli(
        broker.address,
        "tasks",
        "submit",
        "first job",
        "--payload",
        '{"n": 1}',
        "--capability",
        "py",
        "--priority",
        "8",
        "--session",
        "s1",
        "--tag",
        "t1",
        "--max-retries",
        "1",
        "--lease-timeout",
        "5",
    )
    assert r.rc == 0, r.err
    tid, status = r.out.split()
    assert status == "ready"
    t = await client.get_task(tid)
    assert (t.title, t.spec.priority, t.spec.session_id, tuple(t.spec.tags)) == (
        "first job",
        8,
        "s1",
        ("t1",),
    )
    assert t.spec.data == {"n": 1} and t.spec.retry.max_retries == 1 and t.spec.submitted_by == "cli"

    r = await cli(broker.address, "tasks", "submit", "second", "--depends-on", tid, "--json")
    second = json.loads(r.out)["task"]
    assert second["status"] == "blocked" and second["spec"]["depends_on"] == [
        {"task_id": tid, "type": "hard"}
    ]

    r = await cli(broker.address, "tasks", "get", tid)
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in r.out.splitlines())}
    assert fields["title"] == "first job" and fields["status"] == "ready" and fields["payload"] == '{"n": 1}'
    r = await cli(broker.address, "tasks", "get", tid, "--json")
    assert json.loads(r.out)["spec"]["payload"] == {"n": 1}

    r = await cli(broker.address, "tasks", "list")
    table = rows(r.out)
    assert table[0][:8] == ["TASK", "STATUS", "TITLE", "PRI", "ATTEMPT", "AGENT", "PROGRESS", "CREATED"]
    assert {row[0]: row[1] for row in table[1:]} == {tid: "ready", second["task_id"]: "blocked"}
    r = await cli(broker.address, "tasks", "list", "--status", "blocked", "--json")
    assert [x["task_id"] for x in json.loads(r.out)] == [second["task_id"]]
    r = await cli(broker.address, "tasks", "list", "--session", "nothing")
    assert r.out.strip() == "(no tasks)"

    r = await cli(broker.address, "tasks", "get", "t-nope")
    assert r.rc == 1 and "NOT_FOUND" in r.err
    r = await cli(broker.address, "tasks", "submit", "bad", "--priority", "11")
    assert r.rc == 1 and "INVALID_ARGUMENT" in r.err and "priority" in r.err
    r = await cli(broker.address, "tasks", "submit", "bad", "--depends-on", "x:sometimes")
    assert r.rc == 2 and "--depends-on" in r.err


async def test_graph_tree_history_cancel(broker, client, tmp_path):
    graph = tmp_path / "graph.json"
    graph.write_text(
        json.dumps(
            {
                "nodes": [
                    {"key": "plan", "title": "plan the trip"},
                    {"key": "book", "title": "book", "parent": "plan", "required_capabilities": ["py"]},
                    {"key": "pay", "title": "pay", "parent": "plan", "depends_on": ["book"]},
                ]
            }
        )
    )
    r = await cli(broker.address, "tasks", "submit", "--graph", str(graph))
    assert r.rc == 0, r.err
    table = rows(r.out)
    assert table[0] == ["KEY", "TASK", "STATUS", "TITLE"]
    ids = {row[0]: row[1] for row in table[1:]}
    assert {row[0]: row[2] for row in table[1:]} == {"plan": "ready", "book": "ready", "pay": "blocked"}

    r = await cli(
        broker.address,
        "tasks",
        "submit",
        "--graph",
        "-",
        "--json",
        stdin=json.dumps([{"key": "x", "title": "X"}]).encode(),
    )
    assert r.rc == 0 and set(json.loads(r.out)["task_ids"]) == {"x"}

    (a,) = [x for x in await client.claim("w", max_tasks=5) if x.task.task_id == ids["book"]]
    await client.extend_lease(ids["book"], "w", a.attempt, progress=30)
    r = await cli(broker.address, "tasks", "tree", ids["plan"])
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["TASK", "STATUS", "PROGRESS", "AGENT", "TITLE"]
    by_id = {line.split()[0]: line for line in lines[1:4]}
    assert by_id[ids["book"]].split()[1:4] == ["running", "30%", "w"]
    assert by_id[ids["book"]].endswith("  book")  # indented under its parent
    assert "3 tasks:" in lines[-1]
    r = await cli(broker.address, "tasks", "tree", ids["plan"], "--json")
    doc = json.loads(r.out)
    assert len(doc["tasks"]) == 3 and doc["status_counts"]["running"] == 2  # plan and book were claimed

    await client.complete(ids["book"], "w", a.attempt, "booked")
    r = await cli(broker.address, "tasks", "history", ids["book"])
    assert r.rc == 0
    steps = [row[2:4] for row in rows(r.out)[1:]]
    assert [s[1] for s in steps][-3:] == ["ready", "running", "completed"]  # the TO column
    r = await cli(broker.address, "tasks", "history", ids["book"], "--json")
    assert json.loads(r.out)[-1]["to_status"] == "completed"

    r = await cli(broker.address, "tasks", "cancel", ids["plan"], "--cascade", "--json")
    assert r.rc == 0 and set(json.loads(r.out)["cancelled_task_ids"]) == {ids["plan"], ids["pay"]}
    assert (await client.get_task(ids["pay"])).status == TaskStatus.CANCELLED
    r = await cli(broker.address, "tasks", "cancel", ids["plan"])
    assert r.rc == 1 and "FAILED_PRECONDITION" in r.err
    lone = (await client.submit("lone")).task.task_id
    r = await cli(broker.address, "tasks", "cancel", lone, "--reason", "not needed")
    assert (r.rc, r.out.splitlines()) == (0, ["cancelled 1 task", f"  {lone}"])
    assert (await client.get_task(lone)).last_error == "not needed"


async def test_watch(broker, client):
    tid = (await client.submit("watched", required_capabilities=["py"])).task.task_id
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broker",
        "tasks",
        "watch",
        "--task",
        tid,
        "--until-finished",
        "--snapshot",
        "--json",
        "--timeout",
        "30",
        env=cli_env(broker.address),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))  # the snapshot: watch is live
    assert first["snapshot"] is True and first["task"]["status"] == "ready"
    (a,) = await client.claim("w")
    await client.complete(tid, "w", a.attempt, {"ok": 1})
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert [e["transition"]["to_status"] for e in events] == ["running", "completed"]
    assert events[-1]["task"]["result"] == {"ok": 1}

    # Already finished: one line, at once. Table output.
    r = await cli(broker.address, "tasks", "watch", "--task", tid, "--until-finished", "--timeout", "20")
    assert r.rc == 0 and len(r.out.splitlines()) == 1 and "-> completed" in r.out

    r = await cli(broker.address, "tasks", "watch", "--session", "s", "--until-finished")
    assert r.rc == 2


async def test_tasks_retry_replays_a_cancelled_task_as_a_new_one(broker, client):
    tid = (await client.submit("again", required_capabilities=["py"])).task.task_id
    await client.cancel(tid)
    r = await cli(broker.address, "--json", "tasks", "retry", tid)
    assert r.rc == 0, r.err
    copy = json.loads(r.out)
    assert copy["task_id"] != tid and copy["status"] == "ready"
    assert copy["spec"]["metadata"]["a2a.replay_of"] == tid
    r = await cli(broker.address, "tasks", "retry", copy["task_id"])  # ready: not replayed
    assert r.rc != 0 and "only a failed or cancelled task" in r.err


async def test_deps_shows_what_a_task_waits_on_and_what_waits_on_it(broker, client):
    p = (await client.submit("prerequisite", required_capabilities=["py"])).task
    d = (await client.submit("dependent", depends_on=[p.task_id])).task
    prereqs, dependents = await client.get_dependencies(d.task_id)
    assert [(e.task_id, e.blocking) for e in prereqs] == [(p.task_id, True)] and dependents == []
    r = await cli(broker.address, "tasks", "deps", d.task_id)
    assert r.rc == 0, r.err
    (row,) = rows(r.out)[1:]
    assert row[:6] == ["waits", "on", p.task_id, "hard", "ready", "yes"]
    r = await cli(broker.address, "tasks", "deps", p.task_id, "--json")
    assert [e["task_id"] for e in json.loads(r.out)["dependents"]] == [d.task_id]


async def test_deps_edits_a_task_not_started_and_labels_list_tasks(broker, client):
    p = (await client.submit("prerequisite", required_capabilities=["nobody"])).task
    q = (await client.submit("other", required_capabilities=["nobody"])).task
    r = await cli(
        broker.address, "tasks", "submit", "labelled", "--label", "team=search", "--label", "env=prod"
    )
    assert r.rc == 0, r.err
    t = r.out.split()[0]
    r = await cli(broker.address, "tasks", "deps", t, "--add", f"{p.task_id}:optional", "--add", q.task_id)
    assert r.rc == 0, r.err
    kinds = {row[2]: row[3] for row in rows(r.out)[1:]}
    assert kinds == {p.task_id: "optional", q.task_id: "hard"}
    assert (await client.get_task(t)).status.value == "blocked"
    r = await cli(broker.address, "tasks", "deps", t, "--remove", p.task_id, "--remove", q.task_id)
    assert r.rc == 0, r.err
    assert "(no dependencies)" in r.out
    assert (await client.get_task(t)).status.value == "ready"
    r = await cli(broker.address, "--json", "tasks", "list", "--label", "team=search")
    assert [x["task_id"] for x in json.loads(r.out)] == [t]
    r = await cli(broker.address, "tasks", "get", t)
    assert "env=prod" in r.out and "team=search" in r.out
    r = await cli(broker.address, "tasks", "deps", t, "--add", t)
    assert r.rc != 0 and "cycle" in r.err
    r = await cli(broker.address, "tasks", "submit", "bad", "--label", "novalue")
    assert r.rc != 0 and "KEY=VALUE" in r.err
