"""What a newcomer reads first: the README names every RPC and every task state, and the
LICENSE is the Apache-2.0 text the package declares."""

from __future__ import annotations

import re
import tomllib

import pytest

from broker.models.tasks import TaskStatus
from broker.pb import admin_pb2, agents_pb2, messaging_pb2, tasks_pb2
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("module", "service"),
    [
        (admin_pb2, "Admin"),
        (agents_pb2, "AgentRegistry"),
        (messaging_pb2, "Messaging"),
        (tasks_pb2, "TaskQueue"),
    ],
)
def test_the_readme_api_table_lists_every_rpc(module, service):
    row = next(line for line in README.splitlines() if line.startswith(f"| `{service}` |"))
    listed = set(re.findall(r"`(\w+)`", row)) - {service}
    methods = {m.name for m in module.DESCRIPTOR.services_by_name[service].methods}
    assert methods == listed


def test_the_readme_names_every_task_state():
    section = README[README.index("### Tasks") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section else section
    for state in TaskStatus:
        assert f"`{state.value}`" in section, state.value


def test_the_license_is_the_apache_2_text_pyproject_declares():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    for part in (
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "http://www.apache.org/licenses/LICENSE-2.0",
    ):
        assert part in text
