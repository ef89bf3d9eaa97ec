"""Three daemons on one PostgreSQL (a schema of its own): jobs through the CLI and the HTTP
API of different nodes, callbacks to whichever node submitted, one node SIGKILLed and
restarted and another SIGTERMed mid-run; then the upstream's ledger: every job in the state
it decided, nothing submitted twice, never more than the account's limit in any window,
every callback answered 2xx in the event log."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from scripts.ledger_checks import check
from tests.acceptance.harness import SONG, Deployment, free_port, wait_for, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

LIMIT, WINDOW_S = 6, 2.0


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    schema = f"cluster_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def node(tmp_path: Path, n: int, upstream: str, url: str) -> Deployment:
    directory = tmp_path / f"node{n}"
    directory.mkdir()
    port = free_port()
    config = write_config(directory, upstream, callback_port=port, interval_s=1.0)
    text = config.read_text().replace('url = "sqlite:///var/orchestrator.db"', f'url = "{url}"')
    text = text.replace('artifacts_dir = "var/artifacts"', f'artifacts_dir = "{tmp_path}/files"')
    text = text.replace(
        "timeout_s = 5.0", f"timeout_s = 5.0\nsubmit_rate = {LIMIT}\nsubmit_window_s = {WINDOW_S}"
    )
    config.write_text(text)
    return Deployment(directory, config, port)


def test_three_daemons_share_the_work_and_the_account(
    start_sandbox: Any, pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    url = f"{pg_url}?options=-csearch_path%3D{pg_schema}"
    sandbox = start_sandbox(time_scale=0.02, rate_limit_count=LIMIT, rate_limit_window_s=WINDOW_S)
    nodes = [node(tmp_path, n, sandbox.url, url) for n in range(3)]
    try:
        for d in nodes:
            d.start_daemon()
        for i in range(12):  # through the CLI of each node in turn
            nodes[i % 3].cli("submit", "generate_music", "--key", f"cli-{i}", "--params",
                             json.dumps({**SONG, "prompt": f"song {i}"}), check=True)  # fmt: skip
        api = f"http://127.0.0.1:{nodes[1].callback_port}/api/jobs"
        for i in range(3):  # and the HTTP API of one
            body = {"kind": "generate_music", "params": {**SONG, "prompt": f"api {i}"},
                    "key": f"api-{i}"}  # fmt: skip
            assert httpx.post(api, json=body, timeout=10).status_code == 201
        wait_for(lambda: len(sandbox.ledger()["submits"]) >= 7, 60, "work under way")
        nodes[0].procs[-1].send_signal(signal.SIGKILL)  # node loss, then back
        nodes[0].procs[-1].wait(10)
        nodes[2].procs[-1].send_signal(signal.SIGTERM)  # a node stopped on purpose
        assert nodes[2].procs[-1].wait(20) == 0
        nodes[0].start_daemon()

        def settled() -> Any:
            jobs = nodes[1].jobs()
            done = {"completed", "failed", "uncertain"}
            return jobs if len(jobs) == 15 and all(j["state"] in done for j in jobs) else None

        jobs = wait_for(settled, 180, "every job, after the node losses")
    finally:
        for d in nodes:
            d.stop_all()
    ledger = sandbox.ledger()
    report = check(url, tmp_path / "files", ledger)
    assert report.violations(allow_uncertain=True) == [], report.table()
    assert report.duplicate_submits == []
    assert sum(j["state"] == "completed" for j in jobs) >= 14  # a kill mid-submit may hold one
    # the account's limit held across the three: not one submit refused for it, and never
    # more than LIMIT sent in any window (the sandbox would refuse the excess, so what is
    # counted is every request that reached it, refused or not)
    sent = sorted(s["time"] for s in ledger["submits"])
    assert not [s for s in ledger["submits"] if "limit" in s.get("faults", [])]
    for i, t in enumerate(sent):
        in_window = [a for a in sent[i:] if a < t + WINDOW_S - 0.05]
        assert len(in_window) <= LIMIT, f"{len(in_window)} submits sent within {WINDOW_S} s"
    nodes_seen = {e["node"] for j in jobs for e in nodes[1].show(j["key"])["events"]}
    assert len({n for n in nodes_seen if n and not n.startswith("cli:")}) >= 2  # shared work
