"""`pip install ./clients/python` works on its own: in a fresh virtual environment, without
the server package, the client imports, talks to a broker, and its command line runs."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

CLIENT = ROOT / "clients" / "python"

SCRIPT = textwrap.dedent(
    """
    import importlib.util, sys
    from a2a_broker_client import SyncBrokerClient

    assert importlib.util.find_spec("broker") is None, "the server package is installed"
    with SyncBrokerClient(sys.argv[1]) as client:
        client.register("from-outside")
        print([a.agent_id for a in client.list_agents().items])
    """
)


def _install(tmp_path: Path) -> Path:
    # A copy, so that the build leaves nothing (build/, *.egg-info) in the source tree.
    src = tmp_path / "src"
    shutil.copytree(CLIENT, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    pip = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return venv


async def _run(*args: str | Path, cwd: Path) -> tuple[int, str]:
    # cwd away from the repository, whose broker/ folder would otherwise be importable.
    proc = await asyncio.create_subprocess_exec(
        *map(str, args), cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_client_installs_and_runs_without_the_server_package(tmp_path, broker):
    venv = await asyncio.to_thread(_install, tmp_path)
    py = venv / "bin" / "python"
    code, out = await _run(py, "-c", SCRIPT, broker.address, cwd=tmp_path)
    assert code == 0, out
    assert "from-outside" in out
    code, out = await _run(venv / "bin" / "a2a-broker-client", "--help", cwd=tmp_path)
    assert code == 0 and "agents" in out and "subscribe" in out, out
    code, out = await _run(
        venv / "bin" / "a2a-broker-client", "agents", "list", "--address", broker.address, cwd=tmp_path
    )
    assert code == 0 and "from-outside" in out, out
    assert not (venv / "bin" / "a2a-broker").exists()  # the server's command is not claimed
