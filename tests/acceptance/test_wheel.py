"""The package as users get it: a wheel built from the repository, installed in a fresh venv
outside it, runs `orchestrator demo` from an empty directory (templates, static files, the
sandbox's media and the config template must ship)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.acceptance.harness import ROOT

pytestmark = pytest.mark.timeout(600)


def run(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def test_the_wheel_installs_in_a_fresh_venv_and_runs_the_demo(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
        str(ROOT), cwd=tmp_path)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("orchestrator-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in (
        "orchestrator/web/templates/job.html",
        "orchestrator/web/static/ui.js",
        "orchestrator/sandbox/media/sample.mp3",
        "orchestrator/cli/config_template.toml",
        "orchestrator/py.typed",
    ):
        assert shipped in names, shipped
    run(sys.executable, "-m", "venv", str(tmp_path / "venv"), cwd=tmp_path)
    pip = tmp_path / "venv" / "bin" / "pip"
    run(str(pip), "install", "-q", str(wheel), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cli = str(tmp_path / "venv" / "bin" / "orchestrator")
    demo = run(cli, "demo", "--dir", "demo", "--time-scale", "0.02", cwd=elsewhere)
    assert "nothing is paid for twice" in demo.stdout
    assert list((elsewhere / "demo").rglob("audio.wav")), "the demo's files are under --dir"
    init = run(cli, "init", "site", cwd=elsewhere)
    assert (elsewhere / "site" / "config.toml").read_text() == (ROOT / "config.toml").read_text()
    assert "wrote" in init.stdout
