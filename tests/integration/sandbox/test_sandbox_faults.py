"""Each fault over real HTTP: its behaviour as a client sees it, and its rate (fixed seed)."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest

from orchestrator.sandbox import parse_faults
from orchestrator.sandbox.testing import (
    CallbackReceiver,
    SandboxClient,
    generate_body,
    wait_until,
)

#: so slow that no callback falls due while a statistics test submits
FROZEN = 1.0


def assert_rate(count: int, trials: int, rate: float) -> None:
    """``count`` successes in ``trials`` fit a binomial(rate) within 4 standard deviations."""
    sigma = math.sqrt(trials * rate * (1 - rate))
    assert abs(count - trials * rate) <= 4 * sigma + 1, (count, trials, rate)


def many(start_sandbox: Any, make_api: Any, spec: str, **config: Any) -> SandboxClient:
    settings: dict[str, Any] = {"time_scale": FROZEN, "rate_limit_count": 0, "seed": 7}
    settings.update(config)
    return make_api(start_sandbox(faults=parse_faults(spec), **settings))


# -- rates ------------------------------------------------------------------------------------
def test_drop_and_duplicate_rates_per_stage(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = many(start_sandbox, make_api, "drop=0.3,duplicate=0.2")
    for _ in range(150):
        api.generate(receiver.url())
    tasks = api.ledger()["tasks"].values()
    stages = [stage for task in tasks for stage in task["stages"] if stage["callbackType"]]
    assert len(stages) == 450
    assert_rate(sum(stage["callback_dropped"] for stage in stages), 450, 0.3)
    planned = [c for task in tasks for c in task["callbacks_planned"]]
    originals = sum(c["copy"] == 1 for c in planned)
    assert originals == 450 - sum(stage["callback_dropped"] for stage in stages)
    assert_rate(sum(c["copy"] == 2 for c in planned), originals, 0.2)


def test_early_reorder_and_fail_rates_per_task(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = many(start_sandbox, make_api, "early=0.1,reorder=0.25,fail=0.15")
    for _ in range(300):
        api.generate(receiver.url())
    tasks = list(api.ledger()["tasks"].values())
    assert_rate(sum("early" in t["faults"] for t in tasks), 300, 0.1)
    assert_rate(sum("fail" in t["faults"] for t in tasks), 300, 0.15)
    eligible = [t for t in tasks if not ("early" in t["faults"] and "fail" in t["faults"])]
    assert_rate(sum("reorder" in t["faults"] for t in eligible), len(eligible), 0.25)
    failed = [t for t in tasks if "fail" in t["faults"]]
    assert {t["terminal_status"] for t in failed} == {"GENERATE_AUDIO_FAILED"}
    assert {t["error_code"] for t in failed} == {501, 531}


def test_poll_error_rate_and_codes(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = many(start_sandbox, make_api, "poll_error=0.2")
    task_id = api.generate(receiver.url())
    answers = [api.detail("generate", task_id) for _ in range(300)]
    errors = [a for a in answers if a.json()["code"] != 200]
    assert_rate(len(errors), 300, 0.2)
    assert {a.json()["code"] for a in errors} == {500, 455}
    assert all(a.status_code == a.json()["code"] for a in errors)
    assert api.ledger()["polls"][task_id] == 300


def test_submit_error_rate_creates_no_task(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = many(start_sandbox, make_api, "submit_error=0.2")
    codes = [
        api.submit("generate", generate_body(receiver.url())).json()["code"] for _ in range(300)
    ]
    errors = [code for code in codes if code != 200]
    assert_rate(len(errors), 300, 0.2)
    assert set(errors) == {500, 455}
    assert len(api.ledger()["tasks"]) == codes.count(200)


@pytest.mark.parametrize(("profile_name", "code"), [("sunoapi", 430), ("kie", 429)])
def test_rate_limit_fault_rate_per_profile(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver, profile_name: str, code: int
) -> None:
    api = many(start_sandbox, make_api, "rate_limit=0.2", profile=profile_name)
    answers = [api.submit("generate", generate_body(receiver.url())) for _ in range(250)]
    limited = [a for a in answers if a.json()["code"] != 200]
    assert_rate(len(limited), 250, 0.2)
    assert {(a.status_code, a.json()["code"]) for a in limited} == {(code, code)}


def test_http200_rate_on_error_answers(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = many(start_sandbox, make_api, "submit_error=1,http200=0.5")
    answers = [api.submit("generate", generate_body(receiver.url())) for _ in range(200)]
    assert all(a.json()["code"] in (500, 455) for a in answers)
    hidden = [a for a in answers if a.status_code == 200]
    assert_rate(len(hidden), 200, 0.5)
    assert all(a.status_code == a.json()["code"] for a in answers if a.status_code != 200)


def test_slow_and_reset_rates_on_polls(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = many(start_sandbox, make_api, "slow=0.2,slow_s=0,reset=0.1")
    task_id = api.generate(receiver.url())  # may itself be reset: take the id from the ledger
    task_id = next(iter(api.ledger()["tasks"]))
    resets = 0
    for _ in range(300):
        try:
            api.detail("generate", task_id)
        except httpx.RemoteProtocolError:
            resets += 1
    log = api.ledger()["poll_log"]
    assert len(log) == 300
    assert_rate(resets, 300, 0.1)
    assert sum("reset" in entry["faults"] for entry in log) == resets
    assert_rate(sum("slow" in entry["faults"] for entry in log), 300, 0.2)


def test_expire_rate_on_first_hand_out(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(faults=parse_faults("expire=0.3"), rate_limit_count=0))
    task_ids = [api.generate(receiver.url()) for _ in range(30)]
    for task_id in task_ids:
        api.wait_status("generate", task_id, {"SUCCESS", "CALLBACK_EXCEPTION"})
    artifacts = api.ledger()["artifacts"]
    handed = sum(a["handed_out"] for a in artifacts.values())
    expired = sum(a["handed_out_expired"] for a in artifacts.values())
    assert handed > 300
    assert_rate(expired, handed, 0.3)


# -- behaviour --------------------------------------------------------------------------------
def test_drop_sends_no_callback_but_the_task_completes(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(faults=parse_faults("drop=1")))
    task_id, _ = api.finished_song(receiver.url())
    time.sleep(0.05)
    assert receiver.items(task_id) == []
    entry = api.ledger()["tasks"][task_id]
    assert all(stage["callback_dropped"] for stage in entry["stages"])
    assert entry["first_callback_at"] is None and entry["completed_at"] is not None


def test_duplicate_sends_every_stage_twice(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(faults=parse_faults("duplicate=1")))
    task_id = api.generate(receiver.url())
    bodies = receiver.wait_for(6, task_id)
    stages = sorted(b["data"]["callbackType"] for b in bodies)
    assert stages == ["complete", "complete", "first", "first", "text", "text"]

    def copies() -> list[int] | None:
        found = sorted(e["copy"] for e in api.ledger()["callbacks"] if e["taskId"] == task_id)
        return found if len(found) == 6 else None

    assert wait_until(copies) == [1, 1, 1, 2, 2, 2]


def test_early_delivers_the_first_callback_before_the_submit_answer(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(faults=parse_faults("early=1"), time_scale=0.01))
    response = api.submit("generate", generate_body(receiver.url()))
    answered = time.time()
    task_id = response.json()["data"]["taskId"]
    first = receiver.items(task_id)  # no waiting: it is already there
    assert len(first) == 1 and first[0].body["data"]["callbackType"] == "text"
    assert first[0].time < answered
    (entry,) = [e for e in api.ledger()["callbacks"] if e["taskId"] == task_id]
    assert entry["early"] and entry["ok"]
    assert api.record("generate", task_id)["status"] == "TEXT_SUCCESS"


def test_early_music_video_is_complete_before_the_submit_answer(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox()
    api = make_api(sandbox)
    song, info = api.finished_song(receiver.url())
    sandbox.set_faults(parse_faults("early=1"))
    body = {
        "taskId": song,
        "audioId": info["response"]["sunoData"][0]["id"],
        "callBackUrl": receiver.url("/video"),
    }
    task_id = api.submit_ok("mp4", body)
    (item,) = receiver.items(task_id)
    assert item.body["code"] == 200 and item.body["data"]["video_url"]
    assert api.record("mp4", task_id)["successFlag"] == "SUCCESS"


def test_reorder_delivers_complete_before_first(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    # 0.004: first comes 8-20 ms after complete, enough to keep the order on a busy machine
    api = make_api(start_sandbox(faults=parse_faults("reorder=1"), time_scale=0.004))
    task_id = api.generate(receiver.url())
    bodies = receiver.wait_for(3, task_id)
    assert [b["data"]["callbackType"] for b in bodies] == ["text", "complete", "first"]


def test_lag_keeps_record_info_behind_the_callbacks(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(faults=parse_faults("lag=60"), time_scale=0.001))  # 60 ms
    task_id = api.generate(receiver.url())
    bodies = receiver.wait_for(3, task_id)
    assert bodies[-1]["data"]["callbackType"] == "complete"
    assert api.record("generate", task_id)["status"] != "SUCCESS"  # not yet
    api.wait_status("generate", task_id, {"SUCCESS"})
    ledger = api.ledger()
    entry = ledger["tasks"][task_id]
    assert entry["completed_at"] - entry["terminal_callback_at"] == pytest.approx(0.06, abs=0.02)
    for poll in ledger["poll_log"]:
        assert (poll["status"] == "SUCCESS") == (poll["time"] >= entry["completed_at"])


def test_slow_answers_outlast_a_short_client_timeout(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox(faults=parse_faults("slow=1,slow_s=0.3"))
    api = make_api(sandbox, timeout=0.1)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        api.submit("generate", generate_body(receiver.url()))
    assert time.monotonic() - started < 0.3
    (submit,) = sandbox.ledger()["submits"]
    assert submit["outcome"] == "accepted" and submit["faults"] == ["slow"]


def test_reset_on_submit_loses_the_answer_not_the_task(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox(faults=parse_faults("reset=1"))
    api = make_api(sandbox)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        api.submit("generate", generate_body(receiver.url()))
    (submit,) = sandbox.ledger()["submits"]
    assert submit["outcome"] == "accepted" and "reset" in submit["faults"]
    sandbox.set_faults(parse_faults(""))
    record = api.wait_status("generate", submit["taskId"], {"SUCCESS"})
    assert record["taskId"] == submit["taskId"]
    (body,) = [
        b for b in receiver.wait_for(3, submit["taskId"]) if b["data"]["callbackType"] == "complete"
    ]
    assert body["data"]["task_id"] == submit["taskId"]


def test_http200_hides_errors_in_the_envelope(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox(faults=parse_faults("http200=1"))
    api = make_api(sandbox)
    response = api.detail("generate", "0" * 32)
    assert response.status_code == 200 and response.json()["code"] == 404
    with httpx.Client(base_url=sandbox.url) as anonymous:
        response = anonymous.post("/api/v1/generate", json=generate_body(receiver.url()))
    assert response.status_code == 200 and response.json()["code"] == 401
    assert api.submit("generate", {"prompt": "x"}).status_code == 200
    ok = api.submit("generate", generate_body(receiver.url()))
    assert ok.status_code == 200 and ok.json()["code"] == 200


def test_fail_makes_generation_fail(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(faults=parse_faults("fail=1")))
    record = api.wait_status("generate", api.generate(receiver.url()))
    assert record["status"] == "GENERATE_AUDIO_FAILED" and record["errorCode"] in (501, 531)


def test_expired_callback_urls_answer_403_and_a_fresh_poll_works(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    sandbox = start_sandbox(faults=parse_faults("expire=1"))
    api = make_api(sandbox)
    task_id = api.generate(receiver.url())
    bodies = receiver.wait_for(3, task_id)
    (complete,) = [b for b in bodies if b["data"]["callbackType"] == "complete"]
    url = complete["data"]["data"][0]["audio_url"]
    assert api.client.get(url).status_code == 403
    first = api.record("generate", task_id)["response"]["sunoData"][0]["audioUrl"]
    assert api.client.get(first).status_code == 403  # the first hand-out is expired too
    again = api.record("generate", task_id)["response"]["sunoData"][0]["audioUrl"]
    assert api.client.get(again).status_code == 200


def test_same_seed_replays_the_same_run(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    spec = "drop=0.3,duplicate=0.3,early=0.2,reorder=0.3,fail=0.2,poll_error=0.3,lag=1"

    def run(seed: int) -> tuple[list[Any], list[int]]:
        api = many(start_sandbox, make_api, spec, seed=seed)
        ids = [api.generate(receiver.url()) for _ in range(20)]
        codes = [api.detail("generate", ids[0]).json()["code"] for _ in range(30)]
        tasks = api.ledger()["tasks"]
        shapes = []
        for task_id in ids:
            task = tasks[task_id]
            offsets = [round(s["reached_at"] - task["submitted_at"], 6) for s in task["stages"]]
            planned = [(c["stage"], c["copy"]) for c in task["callbacks_planned"]]
            shapes.append((task_id, task["faults"], task["terminal_status"], offsets, planned))
        return shapes, codes

    first, again, other = run(11), run(11), run(12)
    assert first == again
    assert first[0][0][0] != other[0][0][0]


def test_accept_5xx_creates_the_task_answers_an_error_and_proves_it_by_callback(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    """The ambiguous answer of "never pay twice": paid for, yet answered 500 or 455."""
    api = make_api(start_sandbox(faults=parse_faults("accept_5xx=1,drop=1"), time_scale=0.01))
    answers = [api.submit("generate", generate_body(receiver.url())) for _ in range(20)]
    assert {a.json()["code"] for a in answers} <= {500, 455}
    assert all("taskId" not in (a.json().get("data") or {}) for a in answers)
    ledger = api.ledger()
    accepted = [e for e in ledger["submits"] if e["outcome"] == "accepted"]
    assert len(accepted) == 20 and all("accept_5xx" in e["faults"] for e in accepted)
    # every task's first callback proves it (the drop fault never takes it), some before the
    # answer and some after
    for entry in accepted:
        [first] = receiver.wait_for(1, entry["taskId"])
        assert first["data"]["callbackType"] == "text"
    early = [e for e in api.ledger()["callbacks"] if e["early"]]
    assert 0 < len(early) < 20
