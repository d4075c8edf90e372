"""Every code block in the READMEs runs as written against a fresh broker, and ends.

The fenced ``python``, ``sh`` and ``js`` blocks of the documents below are extracted and
run, each against its own broker started by the test (``127.0.0.1:50051`` in a block and
``A2A_BROKER_ADDRESS`` point at it, and any other fixed ``127.0.0.1`` port, such as a second broker
the block starts, becomes a free port: no block depends on a port being free; ``.venv/bin/`` is
this interpreter's folder). A block
that cannot run as written says so in an HTML comment on the line before it (blank lines
allowed in between):

- ``<!-- doc-test: skip (reason) -->``: not run, with the reason shown;
- ``<!-- doc-test: service (reason) -->``: runs until interrupted (a worker): it must
  register an agent, then exit 0 on SIGINT;
- ``<!-- doc-test: needs grpcurl -->``: run when grpcurl is installed, else skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from a2a_broker_client import BrokerClient

from tests.conftest import ROOT, eventually, free_port

DOCS = ["README.md", "clients/python/README.md", "clients/node/README.md", "examples/README.md"]
RUN = {"python", "sh", "js"}
NOT_CODE = {"", "text", "json", "yaml"}  # diagrams, synopses, data, configuration files
DEFAULT_ADDRESS = "127.0.0.1:50051"
DEFAULT_HTTP = "127.0.0.1:8080"  # the HTTP listener's (A2A's JSON-RPC and HTTP+JSON, the console)
VENV_BIN = Path(sys.executable).parent
NODE_DIR = ROOT / "clients" / "node"
RUN_TIMEOUT = 60.0

LOOPBACK = re.compile(r"\b127\.0\.0\.1:([1-9][0-9]*)\b")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
MARKER_FORMS = re.compile(r"^(skip|service) \((.+)\)$|^needs (grpcurl)$")


@dataclass(frozen=True)
class Block:
    path: str
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: str  # the doc-test comment's text, "" without one

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}"


def extract(path: str) -> list[Block]:
    lines = (ROOT / path).read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = len(m.group(1)), m.group(2)
        end = i + 1
        while not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        prev = i - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        marker = MARKER.match(lines[prev]) if prev >= 0 else None
        blocks.append(Block(path, i + 1, lang, code, marker.group(1) if marker else ""))
        i = end + 1
    return blocks


ALL = [b for path in DOCS for b in extract(path)]


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """The blocks' broker serves HTTP too (the A2A bindings, the console), on a free port."""
    return {"http_address": "127.0.0.1:0"}


RUNNABLE = [b for b in ALL if b.lang in RUN]


def test_every_block_is_classified_and_every_marker_is_understood():
    assert len(RUNNABLE) >= 15, [b.name for b in RUNNABLE]  # the extraction found them
    unknown = [f"{b.name} ({b.lang})" for b in ALL if b.lang not in RUN | NOT_CODE]
    assert not unknown, f"blocks in a language the doc test does not know: {unknown}"
    for b in ALL:
        if b.marker:
            assert b.lang in RUN, f"{b.name}: a doc-test marker before a {b.lang or 'plain'} block"
            assert MARKER_FORMS.match(b.marker), f"{b.name}: unknown doc-test marker {b.marker!r}"


async def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # a SIGINT for the snippet only
    )


def _addresses(code: str, address: str, http_address: str | None = None) -> str:
    """The block with the default address replaced by ``address`` (and the HTTP listener's by
    ``http_address``) and every other fixed loopback port by a free one (the same port for the
    same number throughout the block)."""
    ports: dict[str, str] = {}

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == DEFAULT_ADDRESS:
            return address
        if m.group(0) == DEFAULT_HTTP and http_address is not None:
            return http_address
        return ports.setdefault(m.group(1), f"127.0.0.1:{free_port()}")

    return LOOPBACK.sub(replace, code)


def _command(block: Block, address: str, http_address: str | None = None) -> tuple[list[str], Path]:
    code = _addresses(block.code, address, http_address)
    if block.lang == "python":
        return [sys.executable, "-c", code], ROOT
    if block.lang == "sh":
        code = code.replace(".venv/bin/", f"{VENV_BIN}/")
        return ["bash", "-e", "-o", "pipefail", "-c", code], ROOT
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules").is_dir():
        pytest.skip("clients/node has no node_modules: run `make node`")
    return ["node", "--input-type=module", "-e", code], NODE_DIR


async def _agent_ids(address: str) -> set[str]:
    async with BrokerClient(address, timeout=5) as client:
        return {a.agent_id async for a in client.iter_agents()}


async def _output(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await proc.stdout.read()).decode(errors="replace")[-4000:]


@pytest.mark.slow
@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.name)
async def test_doc_block_runs_as_written_and_ends(block: Block, broker) -> None:
    form = MARKER_FORMS.match(block.marker) if block.marker else None
    kind = (form.group(1) or "needs") if form else ""
    if kind == "skip":
        pytest.skip(f"marked in {block.path}: {form.group(2)}")  # type: ignore[union-attr]
    if kind == "needs" and shutil.which("grpcurl") is None:
        pytest.skip("grpcurl is not installed")
    argv, cwd = _command(block, broker.address, broker.http_address)
    env = {**os.environ, "A2A_BROKER_ADDRESS": broker.address, "PYTHONUNBUFFERED": "1"}
    before = await _agent_ids(broker.address)
    proc = await _run(argv, cwd, env)
    try:
        if kind == "service":
            await _serve_then_interrupt(block, proc, broker.address, before)
        else:
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
            except TimeoutError:
                raise AssertionError(
                    f"{block.name} did not end within {RUN_TIMEOUT:.0f}s (a loop that never breaks?)"
                ) from None
            assert proc.returncode == 0, f"{block.name} exited {proc.returncode}:\n{out.decode()[-4000:]}"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _serve_then_interrupt(
    block: Block, proc: asyncio.subprocess.Process, address: str, before: set[str]
) -> None:
    async with BrokerClient(address, timeout=5) as client:

        async def registered() -> bool:  # a new agent: the snippet's, up and running
            if proc.returncode is not None:
                raise AssertionError(f"{block.name} exited {proc.returncode} early:\n{await _output(proc)}")
            return bool({a.agent_id for a in (await client.list_agents()).items} - before)

        await eventually(registered, timeout=30, interval=0.05, what=f"{block.name} to register an agent")
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        raise AssertionError(f"{block.name} did not stop within 30s of SIGINT") from None
    assert proc.returncode == 0, f"{block.name} exited {proc.returncode} on SIGINT:\n{out.decode()[-4000:]}"
