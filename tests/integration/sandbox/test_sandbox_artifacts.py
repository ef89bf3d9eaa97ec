"""Artifact downloads over real HTTP: types, lengths, ranges, expiry, deterministic bytes."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx

from orchestrator.sandbox.testing import CallbackReceiver, SandboxClient, wait_until


def finished_media(api: SandboxClient, receiver: CallbackReceiver) -> dict[str, str]:
    """URLs of one of each artifact type: mp3, stream, jpeg, mp4, wav."""
    song, record = api.finished_song(receiver.url())
    track = record["response"]["sunoData"][0]
    body = {"taskId": song, "audioId": track["id"], "callBackUrl": receiver.url()}
    mp4, wav = api.submit_ok("mp4", body), api.submit_ok("wav", body)
    return {
        "mp3": track["audioUrl"],
        "stream": track["streamAudioUrl"],
        "jpeg": track["imageUrl"],
        "cdn": track["sourceAudioUrl"],
        "mp4": api.wait_status("mp4", mp4)["response"]["videoUrl"],
        "wav": api.wait_status("wav", wav)["response"]["audioWavUrl"],
    }


def test_every_artifact_is_served_with_type_length_and_valid_bytes(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    urls = finished_media(api, receiver)
    expected = {
        "mp3": ("audio/mpeg", b"ID3"),
        "stream": ("audio/mpeg", b"ID3"),
        "cdn": ("audio/mpeg", b"ID3"),
        "jpeg": ("image/jpeg", b"\xff\xd8\xff"),
        "mp4": ("video/mp4", b"\x00\x00\x00"),
        "wav": ("audio/wav", b"RIFF"),
    }
    ledger_artifacts = api.ledger()["artifacts"]
    for name, url in urls.items():
        response = api.client.get(url)
        assert response.status_code == 200, name
        content_type, magic = expected[name]
        assert response.headers["content-type"] == content_type
        assert response.headers["accept-ranges"] == "bytes"
        assert int(response.headers["content-length"]) == len(response.content) > 1000
        assert response.content.startswith(magic)
        artifact = url.split("?")[0].rsplit("/", 1)[1]
        key = artifact if "." in artifact else f"{artifact}.mp3"
        entry = ledger_artifacts[key]
        assert entry["bytes"] == len(response.content)
        assert entry["sha256"] == hashlib.sha256(response.content).hexdigest()
        assert entry["content_type"] == content_type
    assert b"ftyp" in api.client.get(urls["mp4"]).content[:12]
    downloads = api.ledger()["artifacts"]
    assert sum(entry["downloads"] for entry in downloads.values()) == len(urls) + 1


def test_bytes_are_deterministic_per_id_and_differ_between_ids(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    _, record = api.finished_song(receiver.url())
    one, two = record["response"]["sunoData"]
    fresh = api.record("generate", record["taskId"])["response"]["sunoData"][0]
    first = api.client.get(one["audioUrl"]).content
    assert api.client.get(fresh["audioUrl"]).content == first
    assert api.client.get(one["streamAudioUrl"]).content == first
    assert api.client.get(two["audioUrl"]).content != first


def test_range_requests(api: SandboxClient, receiver: CallbackReceiver) -> None:
    url = finished_media(api, receiver)["mp4"]
    whole = api.client.get(url).content
    size = len(whole)
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-10": (size - 10, size - 1),
        f"bytes=10-{size + 50}": (10, size - 1),
    }
    for header, (start, end) in cases.items():
        response = api.client.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert int(response.headers["content-length"]) == end - start + 1
        assert response.content == whole[start : end + 1]
    response = api.client.get(url, headers={"Range": f"bytes={size}-"})
    assert response.status_code == 416 and response.headers["content-range"] == f"bytes */{size}"
    for ignored in ("bytes=0-1,5-6", "items=0-5", "bytes=abc"):
        response = api.client.get(url, headers={"Range": ignored})
        assert response.status_code == 200 and response.content == whole


def test_head_gives_headers_without_body(api: SandboxClient, receiver: CallbackReceiver) -> None:
    url = finished_media(api, receiver)["jpeg"]
    size = len(api.client.get(url).content)
    response = api.client.head(url)
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) == size


def test_urls_expire_and_record_info_hands_out_fresh_ones(
    start_sandbox: Any, make_api: Any, receiver: CallbackReceiver
) -> None:
    api = make_api(start_sandbox(url_ttl_s=0.3))
    task_id, record = api.finished_song(receiver.url())
    url = record["response"]["sunoData"][0]["audioUrl"]
    assert api.client.get(url).status_code == 200
    expired = wait_until(lambda: r if (r := api.client.get(url)).status_code != 200 else None)
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    fresh = api.record("generate", task_id)["response"]["sunoData"][0]["audioUrl"]
    assert api.client.get(fresh).status_code == 200
    time.sleep(0.01)


def test_tampered_and_unknown_urls_are_refused(
    api: SandboxClient, receiver: CallbackReceiver
) -> None:
    url = finished_media(api, receiver)["mp3"]
    base, query = url.split("?")
    expires = int(query.split("expires=")[1].split("&")[0])
    longer = url.replace(f"expires={expires}", f"expires={expires + 10**9}")
    assert api.client.get(longer).status_code == 403  # the signature covers the expiry
    other = base.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000.mp3?" + query
    assert api.client.get(other).status_code == 403
    assert api.client.get(base).status_code == 403  # no signature at all
    refused = api.ledger()["artifacts"]
    assert sum(entry["refused"] for entry in refused.values()) >= 2
    with httpx.Client() as plain:  # artifacts need no API key
        assert plain.get(url).status_code == 200
