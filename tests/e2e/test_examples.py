"""Smoke test of examples/: a broker subprocess, the two workers, and the orchestrator,
exactly as examples/README.md runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port

EXAMPLES = ROOT / "examples"


@pytest.mark.slow
def test_orchestrator_and_workers_produce_the_report(broker_process, tmp_path):
    broker = broker_process(tmp_path / "broker.db", A2A_BROKER_LOG_LEVEL="WARNING")
    broker.start()
    env = {**os.environ, "A2A_BROKER_ADDRESS": broker.address, "PYTHONUNBUFFERED": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("fetcher.py", "writer.py")
    ]
    try:
        orch = subprocess.run(
            [sys.executable, str(EXAMPLES / "orchestrator.py"), "--topic", "tidal power", "--timeout", "40"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=50,
        )
        assert orch.returncode == 0, orch.stdout + orch.stderr
        out = orch.stdout
        assert "submitted 5 tasks in session report-" in out
        assert "summarize            blocked -> ready" in out
        assert "publish              running -> completed (writer-1)" in out
        assert "completed (closed, and every task finished), tasks {'completed': 5}" in out
        assert "Report on tidal power (from encyclopedia, news, papers):" in out
        assert out.count("  - ") == 9
        for w in workers:
            w.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=20)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        assert "[fetcher-1] stopped" in outputs[0] and "fetched 3 notes" in outputs[0]
        assert "[writer-1] stopped" in outputs[1] and "publish done" in outputs[1]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(10)


@pytest.mark.slow
def test_the_mcp_host_example_over_stdio_and_http(broker_process, tmp_path):
    http = free_port()
    broker = broker_process(
        tmp_path / "broker.db", A2A_BROKER_LOG_LEVEL="WARNING", A2A_BROKER_HTTP_ADDRESS=f"127.0.0.1:{http}"
    )
    broker.start()
    env = {**os.environ, "A2A_BROKER_ADDRESS": broker.address, "PYTHONUNBUFFERED": "1"}
    fetcher = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fetcher.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for extra in ([], ["--url", f"http://127.0.0.1:{http}/mcp"]):
            host = subprocess.run(
                [sys.executable, str(EXAMPLES / "mcp_host.py"), "--topic", "tidal power", *extra],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=50,
            )
            assert host.returncode == 0, host.stdout + host.stderr
            out = host.stdout
            assert "14 tools: list_capabilities, list_agents, submit_task" in out
            assert "fetch: 1/1 agents online, 2 free" in out
            assert "progress 1: " in out and ": completed" in out
            assert "  - recent results of tidal power (papers #" in out
            assert ": completed, " in out and " state changes" in out
    finally:
        fetcher.send_signal(signal.SIGTERM)
        fetcher.communicate(timeout=20)
