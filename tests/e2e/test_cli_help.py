"""Issue 22.7: what the command line and the clients say, as a user reads it: plain help (no reST
markup, no source file names), usage lines that list every subcommand, and the first entry of a
task's history read the same from the Python client as from the CLI."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from a2a_broker_client import BrokerClient, TaskStatus

from broker.cli import build_parser
from tests.e2e.test_cli_agents import cli


def parsers(
    p: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line, with the words that reach it."""
    yield " ".join(("a2a-broker", *path)), p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*path, name))


ALL = list(parsers(build_parser()))


@pytest.mark.parametrize(("command", "parser"), ALL, ids=[c for c, _ in ALL])
def test_help_is_plain_text_and_usage_lists_every_subcommand(command, parser):
    text = parser.format_help()
    assert "``" not in text and ":func:" not in text, f"{command} --help shows reST markup:\n{text}"
    assert ".py" not in text, f"{command} --help sends the reader to a source file:\n{text}"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            usage = parser.format_usage()
            missing = [name for name in action.choices if name not in usage]
            assert not missing, f"{command}: the usage line omits {missing}: {usage}"


async def test_tasks_help_as_printed():
    r = await cli(None, "tasks", "--help")
    assert r.rc == 0, r.err
    usage = " ".join(r.out.split("\n\n")[0].split())
    assert "retry" in usage, usage
    r = await cli(None, "tokens", "--help")
    assert r.rc == 0 and "``" not in r.out and "tokens.py" not in r.out, r.out


async def test_the_first_history_entry_comes_from_nothing(broker):
    async with BrokerClient(broker.address) as c:
        task = (await c.submit("t")).task
        first, second = await c.get_history(task.task_id)
    # Nothing before the first entry: None, as the CLI prints "-" (not the enum's "unspecified").
    assert first.from_status is None and first.to_status is TaskStatus.PENDING
    assert second.from_status is TaskStatus.PENDING
    r = await cli(broker.address, "tasks", "history", task.task_id)
    assert r.rc == 0 and r.out.splitlines()[1].split()[2:4] == ["-", "pending"], r.out
