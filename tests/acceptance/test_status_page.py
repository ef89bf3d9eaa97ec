"""The status page in a real browser (Playwright driving Debian's Chromium): the list, a filter,
a job page with its files, retry on a failed job watched live without a reload; CSRF and the
access rule. Screenshots go to the test's tmp dir (and, with ORCHESTRATOR_SCREENSHOTS=DIR,
there too: docs/img has the ones in the README)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.harness import SONG, Deployment, submit_song, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)


@pytest.fixture
def browser() -> Any:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def shot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    extra = os.environ.get("ORCHESTRATOR_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(extra) / f"{name}.png"), full_page=True)


def test_the_list_a_job_page_and_a_live_retry(
    start_sandbox: Any, deploy: Any, browser: Any, tmp_path: Path
) -> None:
    sandbox = start_sandbox(time_scale=0.02)
    deployment: Deployment = deploy(sandbox.url, interval_s=1.0)
    submit_song(deployment, "calm-piano")
    submit_song(deployment, "rain-song")
    deployment.cli(
        "submit", "generate_music", "--key", "doomed", "--params",
        json.dumps({**SONG, "prompt": "a song FAIL_CREATE"}), check=True,
    )  # fmt: skip
    deployment.start_daemon()
    wait_for(
        lambda: {j["state"] for j in deployment.jobs()} == {"completed", "failed"}, 60, "the run"
    )
    base = f"http://127.0.0.1:{deployment.callback_port}"
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{base}/ui/")
    assert page.locator("#jobs tbody tr").count() == 3
    assert "completed 2" in page.locator("#counts").inner_text()
    shot(page, tmp_path, "status-list")
    # filter: by state, then by key search
    page.select_option("select[name=state]", "failed")
    page.click("form.filters button")
    page.wait_for_url("**state=failed**")
    assert page.locator("#jobs tbody tr").count() == 1
    assert page.locator("#jobs tbody tr").first.get_attribute("data-key") == "doomed"
    page.goto(f"{base}/ui/?q=rain")
    assert [r.get_attribute("data-key") for r in page.locator("#jobs tbody tr").all()] == [
        "rain-song"
    ]
    # a job page: why, its files (playable), its timeline
    page.click("text=rain-song")
    page.wait_for_url("**/ui/jobs/rain-song")
    assert "done: 4 file(s) stored" in page.locator("#job-why").inner_text()
    assert page.locator("audio").count() == 2 and page.locator("img").count() == 2
    href = page.locator(".artifacts a").first.get_attribute("href")
    served = httpx.get(base + str(href), timeout=5)
    assert served.status_code == 200 and served.headers["content-type"] == "audio/mpeg"
    assert page.locator("table.events tbody tr").count() >= 4
    page.locator("details").first.click()
    shot(page, tmp_path, "status-job")
    # retry on the failed job, watched live
    page.goto(f"{base}/ui/jobs/doomed")
    assert page.locator("#job-state").inner_text() == "failed"
    page.click("button.action-retry")
    page.wait_for_url("**/ui/jobs/doomed?message=retry*")
    page.evaluate("window.__still_this_page = true")
    page.wait_for_function(
        "document.getElementById('job-state').textContent !== 'queued'", timeout=30_000
    )
    page.wait_for_function(
        "document.getElementById('job-state').textContent === 'failed'", timeout=60_000
    )  # FAIL_CREATE fails again, as the upstream decides: seen without a reload
    assert page.evaluate("window.__still_this_page") is True
    events = deployment.cli_json("show", "doomed")["events"]
    assert [e["type"] for e in events].count("retry_requested") == 1


def test_a_form_without_its_csrf_token_is_refused(start_sandbox: Any, deploy: Any) -> None:
    deployment: Deployment = deploy("http://127.0.0.1:9", interval_s=1.0)
    submit_song(deployment, "song")
    deployment.start_daemon()
    base = f"http://127.0.0.1:{deployment.callback_port}"
    forged = httpx.post(f"{base}/ui/jobs/song/cancel", data={"csrf": "guess"}, timeout=5)
    assert forged.status_code == 400
    assert deployment.cli_json("show", "song")["state"] != "cancelled"
    away = httpx.get(f"{base}/ui/", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert away.status_code == 403


def test_with_a_token_the_page_asks_for_it_and_keeps_it_in_a_session(
    deploy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "t0ken-" + "x" * 20
    monkeypatch.setenv("ORCHESTRATOR_TEST_UI_TOKEN", token)
    deployment: Deployment = deploy(
        "http://127.0.0.1:9",
        interval_s=1.0,
        polling="",
    )
    text = deployment.config.read_text().replace(
        'mode = "verify"', 'mode = "verify"\napi_token_env = "ORCHESTRATOR_TEST_UI_TOKEN"'
    )
    deployment.config.write_text(text)
    submit_song(deployment, "song")
    deployment.start_daemon()
    base = f"http://127.0.0.1:{deployment.callback_port}"
    with httpx.Client(base_url=base, timeout=5) as client:
        first = client.get("/ui/jobs/song")
        assert first.status_code == 302 and "/ui/login" in first.headers["location"]
        wrong = client.post("/ui/login", data={"token": "nope", "next": "/ui/jobs/song"})
        assert wrong.status_code == 401 and "not the token" in wrong.text
        right = client.post("/ui/login", data={"token": token, "next": "/ui/jobs/song"})
        assert right.status_code == 302 and right.headers["location"].endswith("/ui/jobs/song")
        page = client.get("/ui/jobs/song")
        assert page.status_code == 200 and "song" in page.text
        assert token not in page.text and token not in str(client.cookies.get("session"))
    bearer = httpx.get(f"{base}/ui/", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert bearer.status_code == 200
