"""The committed stubs in broker/pb and clients/python/a2a_broker_client/pb are exactly what
`make proto` generates."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COPIES = {
    "broker.pb": ROOT / "broker" / "pb",
    "a2a_broker_client.pb": ROOT / "clients" / "python" / "a2a_broker_client" / "pb",
}


@pytest.mark.parametrize("package", sorted(COPIES))
def test_generated_code_is_up_to_date(tmp_path, package):
    out = tmp_path / "pb"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(out), package],
        check=True,
        capture_output=True,
    )
    committed = COPIES[package]
    assert committed.is_dir(), f"run `make proto`: {committed} is missing"
    fresh = {p.name: p.read_text() for p in out.iterdir() if p.is_file()}
    current = {p.name: p.read_text() for p in committed.iterdir() if p.is_file()}
    assert sorted(fresh) == sorted(current), "run `make proto`: the set of generated files differs"
    stale = [name for name in fresh if fresh[name] != current[name]]
    assert not stale, f"run `make proto`: {stale} differ from what protos/ generates"


@pytest.mark.parametrize("package", sorted(COPIES))
def test_generated_code_does_not_claim_a2a_top_level_name(package):
    paths = list(COPIES[package].glob("*.py*"))
    assert paths
    for path in paths:
        text = path.read_text()
        assert "import a2a" not in text.replace("import a2a_broker_client", ""), path.name
        assert "from a2a" not in text.replace("from a2a_broker_client", ""), path.name


def test_client_copy_imports_only_its_own_package():
    for path in COPIES["a2a_broker_client.pb"].glob("*.py*"):
        assert "broker.pb" not in path.read_text().replace("a2a_broker_client.pb", ""), path.name
