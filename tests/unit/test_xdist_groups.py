"""The tests of one ``xdist_group`` run on one worker under ``pytest -n --dist loadgroup`` (as
`make test` runs them): checked on a scratch suite, since a broken grouping fails nothing by
itself (tests/xdist_groups.py says why it could break)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

GROUPED = textwrap.dedent(
    """
    import os
    import pytest

    pytestmark = pytest.mark.xdist_group("together")

    @pytest.mark.parametrize("i", range(8))
    def test_grouped(i):
        with open(os.environ["GROUP_WORKERS_FILE"], "a") as f:
            f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    """
)
FREE = textwrap.dedent(
    """
    import pytest

    @pytest.mark.parametrize("i", range(8))
    def test_free(i):
        pass
    """
)


def test_a_group_runs_on_one_worker(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_grouped.py").write_text(GROUPED)
    (suite / "test_free.py").write_text(FREE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GROUP_WORKERS_FILE": str(tmp_path / "workers")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.xdist_groups", "-p", "no:cacheprovider",
         "-n", "2", "--dist", "loadgroup", "-q", str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    workers = (tmp_path / "workers").read_text().split()
    assert len(workers) == 8 and len(set(workers)) == 1, workers
