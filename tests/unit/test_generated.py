"""The committed stubs in broker/pb are exactly what `make proto` generates."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_up_to_date(tmp_path):
    out = tmp_path / "pb"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(out)],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "broker" / "pb"
    fresh = {p.name: p.read_text() for p in out.iterdir() if p.is_file()}
    current = {p.name: p.read_text() for p in committed.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(current), "run `make proto`: the set of generated files differs"
    stale = [name for name in fresh if fresh[name] != current[name]]
    assert not stale, f"run `make proto`: {stale} differ from what protos/ generates"


def test_generated_code_does_not_claim_a2a_top_level_name():
    for path in (ROOT / "broker" / "pb").glob("*.py*"):
        text = path.read_text()
        assert "import a2a" not in text and "from a2a" not in text, path.name
