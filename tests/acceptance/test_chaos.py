"""A small chaos soak (scripts/chaos --quick): faults, 3 SIGKILLs, the ledger checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.harness import ROOT

pytestmark = [pytest.mark.timeout(150), pytest.mark.slow]


def test_quick_chaos_keeps_every_promise(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--quick", "--seed", "7",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=140, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "violations                                0" in result.stdout
    assert "duplicate submits                       0" in result.stdout


@pytest.mark.postgres
def test_quick_chaos_on_three_daemons_on_postgres_keeps_every_promise(
    tmp_path: Path, pg_url: str
) -> None:
    # scripts/chaos --postgres --daemons 3, bounded: the usual faults, kills of random
    # nodes, callbacks to the node that submitted, the ledger's checks over the cluster
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--quick", "--seed", "11",
         "--postgres", "--daemons", "3", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=140, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "violations                                0" in result.stdout
    assert "duplicate submits                       0" in result.stdout
