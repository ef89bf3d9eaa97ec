"""The server's lifecycle, the control endpoints and the command line, on loopback."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from orchestrator.sandbox import SandboxConfig, SandboxServer
from orchestrator.sandbox.cli import add_arguments, run
from orchestrator.sandbox.testing import CallbackReceiver, SandboxClient


def test_starts_on_a_free_port_and_stops_fast() -> None:
    ports = set()
    for _ in range(5):
        started = time.monotonic()
        with SandboxServer(SandboxConfig(port=0)) as sandbox:
            assert sandbox.url.startswith("http://127.0.0.1:")
            ports.add(sandbox.port)
            assert httpx.get(f"{sandbox.url}/_sandbox/health").json()["ok"] is True
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 1.0
        assert stopping - started < 1.0
    assert len(ports) == 5
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports.pop()}/_sandbox/health")


def test_stop_is_idempotent_and_url_needs_start() -> None:
    sandbox = SandboxServer(SandboxConfig(port=0))
    with pytest.raises(RuntimeError):
        _ = sandbox.url
    sandbox.start()
    with pytest.raises(RuntimeError):
        sandbox.start()
    sandbox.stop()
    sandbox.stop()


def test_ledger_endpoint_matches_the_method(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox()
    api = make_api(sandbox)
    task_id = api.generate(receiver.url())
    over_http = api.ledger()
    direct = sandbox.ledger()
    assert (
        set(over_http)
        == set(direct)
        == {
            "now",
            "now_iso",
            "config",
            "credits",
            "submits",
            "polls",
            "poll_log",
            "callbacks",
            "tasks",
            "artifacts",
            "rejected",
        }
    )
    assert over_http["submits"] == direct["submits"]
    (submit,) = direct["submits"]
    assert submit["taskId"] == task_id and submit["kind"] == "generate_music"
    assert submit["params"]["prompt"] == "a calm piano piece at night"
    assert isinstance(submit["time"], float) and submit["time_iso"].endswith("Z")
    assert "sandbox-key" not in str(direct)  # the key is never echoed


def test_control_endpoints(start_sandbox: Any, make_api: Any, receiver: CallbackReceiver) -> None:
    sandbox = start_sandbox()
    api: SandboxClient = make_api(sandbox)
    client = api.client
    response = client.post("/_sandbox/faults", json={"spec": "drop=0.5,lag=2"})
    assert response.json()["faults"] == "drop=0.5,lag=2"
    assert sandbox.engine.faults.drop == 0.5
    response = client.post("/_sandbox/faults", json={"poll_error": 0.1})
    assert response.json()["faults"] == "poll_error=0.1"
    bad = client.post("/_sandbox/faults", json={"spec": "bogus=1"})
    assert bad.status_code == 400 and "bogus" in bad.json()["error"]
    assert client.post("/_sandbox/faults", json={"drop": 2}).status_code == 400
    assert client.get("/_sandbox/faults").json()["values"]["poll_error"] == 0.1
    client.post("/_sandbox/faults", json={"spec": ""})
    api.generate(receiver.url())
    assert client.post("/_sandbox/credits", json={"credits": 5}).json() == {"credits": 5}
    assert api.credits() == 5
    assert client.post("/_sandbox/credits", json={"credits": -1}).status_code == 400
    assert client.post("/_sandbox/reset").json() == {"ok": True}
    ledger = api.ledger()
    assert ledger["tasks"] == {} and ledger["submits"] == []
    assert api.credits() == sandbox.config.credits


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.sandbox", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_cli_serves_until_sigint() -> None:
    process = run_cli("--port", "0", "--profile", "kie", env={"SUNO_API_KEY": "from-env"})
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "profile kie" in line, line
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        answer = httpx.get(
            f"{url}/api/v1/generate/credit", headers={"Authorization": "Bearer from-env"}
        )
        assert answer.json()["code"] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


BAD_FLAGS = [
    (["--faults", "drop=2"], "between 0 and 1"),
    (["--faults", "nonsense=0.1"], "unknown fault 'nonsense'"),
    (["--time-scale", "0"], "time_scale"),
    (["--profile", "sunoapi", "--hmac-key", "k"], "kie"),
]


def test_cli_refuses_bad_flags_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in BAD_FLAGS:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        assert run(parser.parse_args(["--port", "0", *args])) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, args


def test_cli_module_exits_2_without_a_traceback() -> None:
    process = run_cli("--port", "0", "--faults", "drop=2")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert "between 0 and 1" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_reports_a_busy_port() -> None:
    with SandboxServer(SandboxConfig(port=0)) as sandbox:
        process = run_cli("--port", str(sandbox.port))
        _, err = process.communicate(timeout=10)
    assert process.returncode == 2 and "cannot listen" in err and "Traceback" not in err


def test_kie_cdn_user_agent_check_is_opt_in(start_sandbox: Any) -> None:
    strict = start_sandbox(profile="kie", require_browser_user_agent=True)
    headers = {"Authorization": "Bearer sandbox-key"}
    with httpx.Client(base_url=strict.url, headers=headers) as client:
        refused = client.get("/api/v1/generate/credit")
        assert refused.status_code == 403 and "text/html" in refused.headers["content-type"]
        browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"}
        assert client.get("/api/v1/generate/credit", headers=browser).json()["code"] == 200


def test_optional_poll_limit_per_task(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(profile="kie", poll_limit_per_s=3))
    task_id = api.generate(receiver.url())
    codes = [api.detail("generate", task_id).json()["code"] for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
