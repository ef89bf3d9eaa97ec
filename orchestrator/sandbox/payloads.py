"""The JSON the sandbox speaks: record-info ``data`` and callback bodies, per kind.

Field names follow the provider pages: record-info in camelCase (``sunoData``, ``audioUrl``,
``successFlag``), callbacks in snake_case (``task_id``, ``audio_url``, ``video_url``), the
music-family callback with ``callbackType``. Timestamps come in the three formats the real
API uses, one per task (chosen by its seeded draws): ``"YYYY-MM-DD HH:MM:SS"`` (UTC), epoch
milliseconds, or ISO 8601 with ``Z``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from orchestrator.sandbox.lifecycle import CALLBACK_EXCEPTION, PENDING
from orchestrator.sandbox.tasks import Task, Track

Channel = Literal["poll", "callback"]
Route = Literal["files", "stream", "cdn"]

OPERATION_TYPES: dict[str, str] = {
    "generate_music": "generate",
    "extend": "extend",
    "replace_section": "replace_section",
}

CALLBACK_MESSAGES: dict[str, str] = {
    "text": "Text generation completed.",
    "first": "First track generated successfully.",
    "complete": "All generated successfully.",
}

SUCCESS_MESSAGES: dict[str, str] = {
    "music_video": "MP4 generated successfully.",
    "wav": "success",
    "vocal_removal": "vocal Removal generated successfully.",
}


def _lyrics_items(task: Task) -> list[dict[str, Any]]:
    return [
        {"text": text, "title": title, "status": "complete", "errorMessage": ""}
        for title, text in task.texts
    ]


def lyrics_record(task: Task, now: float) -> dict[str, Any]:
    """``data`` of lyrics/record-info (status words as generate's, ``type`` LYRICS)."""
    status = task.status(now)
    error_code, error_message = _error_fields(task, status)
    done = status != PENDING and task.succeeds
    return {
        "taskId": task.task_id,
        "param": json.dumps(task.params, ensure_ascii=False),
        "response": {"taskId": task.task_id, "data": _lyrics_items(task)} if done else None,
        "status": status,
        "type": "LYRICS",
        "errorCode": error_code,
        "errorMessage": error_message,
    }


class UrlMaker(Protocol):
    """Hands out a signed URL for one artifact of a task (and records it in the ledger)."""

    def __call__(self, task: Task, name: str, route: Route, channel: Channel) -> str: ...


def format_time(epoch: float, style: int) -> str | int:
    """``style`` 0: "YYYY-MM-DD HH:MM:SS" (UTC), 1: epoch milliseconds, 2: ISO 8601."""
    moment = datetime.fromtimestamp(epoch, UTC)
    if style == 0:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if style == 1:
        return int(epoch * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _track_fields(
    task: Task, track: Track, level: int, urls: UrlMaker, channel: Channel
) -> dict[str, Any]:
    """The camelCase fields of one track at ``level`` (0 text, 1 streaming, 2 complete)."""
    audio = source_audio = stream = source_stream = image = source_image = ""
    if level >= 1:
        stream = urls(task, track.audio_name, "stream", channel)
        source_stream = urls(task, track.audio_name, "cdn", channel)
        image = urls(task, track.image_name, "files", channel)
        source_image = urls(task, track.image_name, "cdn", channel)
    if level >= 2:
        audio = urls(task, track.audio_name, "files", channel)
        source_audio = urls(task, track.audio_name, "cdn", channel)
    return {
        "id": track.audio_id,
        "audioUrl": audio,
        "sourceAudioUrl": source_audio,
        "streamAudioUrl": stream,
        "sourceStreamAudioUrl": source_stream,
        "imageUrl": image,
        "sourceImageUrl": source_image,
        "prompt": track.prompt,
        "modelName": track.model_name,
        "title": track.title,
        "tags": track.tags,
        "createTime": format_time(task.submitted_at, task.draws.time_format),
        "duration": track.duration if level >= 2 else None,
    }


def _error_fields(task: Task, status: str) -> tuple[int | None, str | None]:
    failure = task.plan.failure
    if failure is not None and status == failure.status:
        return failure.code, failure.message
    if status == CALLBACK_EXCEPTION:
        return None, "Callback delivery failed after 3 attempts; the generation succeeded."
    return None, None


def music_record(task: Task, now: float, urls: UrlMaker) -> dict[str, Any]:
    """``data`` of generate/record-info for a music-family task."""
    status = task.status(now)
    index = task.visible_index(now)
    error_code, error_message = _error_fields(task, status)
    response: dict[str, Any] | None
    if status == PENDING or (task.plan.failure is not None and status == task.plan.failure.status):
        response = (
            None if task.draws.pending_shape == 0 else {"taskId": task.task_id, "sunoData": []}
        )
    else:
        response = {
            "taskId": task.task_id,
            "sunoData": [
                _track_fields(task, track, task.track_level(n, index), urls, "poll")
                for n, track in enumerate(task.tracks)
            ],
        }
    return {
        "taskId": task.task_id,
        "parentMusicId": task.source_audio_id or "",
        "param": json.dumps(task.params, ensure_ascii=False),
        "response": response,
        "status": status,
        "type": task.tracks[0].model_name if task.tracks else "",
        "operationType": OPERATION_TYPES[task.kind],
        "errorCode": error_code,
        "errorMessage": error_message,
        "createTime": format_time(task.submitted_at, task.draws.time_format),
    }


def _result_urls(task: Task, urls: UrlMaker, channel: Channel) -> dict[str, str]:
    return {
        field: urls(task, name, "files", channel) for field, name in task.result_names().items()
    }


def media_record(task: Task, now: float, urls: UrlMaker) -> dict[str, Any]:
    """``data`` of mp4/wav/vocal-removal record-info."""
    flag = task.status(now)
    error_code, error_message = _error_fields(task, flag)
    done = flag != PENDING
    response = _result_urls(task, urls, "poll") if done and task.succeeds else None
    record: dict[str, Any] = {
        "taskId": task.task_id,
        "musicId": task.source_task_id,
        "callbackUrl": task.callback_url,
        "audioId": task.source_audio_id,
        "completeTime": format_time(task.completed_at, task.draws.time_format) if done else None,
        "response": response,
        "successFlag": flag,
        "createTime": format_time(task.submitted_at, task.draws.time_format),
        "errorCode": error_code,
        "errorMessage": error_message,
    }
    if task.kind == "vocal_removal":
        record["type"] = task.params.get("type", "separate_vocal")
    return record


def record(task: Task, now: float, urls: UrlMaker) -> dict[str, Any]:
    if task.kind == "lyrics":
        return lyrics_record(task, now)
    return music_record(task, now, urls) if task.is_music else media_record(task, now, urls)


def callback_body(task: Task, stage_index: int, urls: UrlMaker) -> dict[str, Any]:
    """The JSON POSTed to ``callBackUrl`` when stage ``stage_index`` is reached."""
    stage = task.plan.stages[stage_index]
    failure = task.plan.failure
    if task.is_music:
        data: dict[str, Any] = {"callbackType": stage.callback, "task_id": task.task_id}
        if stage.callback == "error":
            assert failure is not None
            data["error"] = failure.message
            return {"code": failure.code, "msg": failure.message, "data": data}
        if stage.callback == "text":
            data["data"] = [] if task.draws.text_data_shape == 0 else None
        else:
            tracks = []
            for n, track in enumerate(task.tracks):
                fields = _track_fields(
                    task, track, task.track_level(n, stage_index), urls, "callback"
                )
                tracks.append({_snake(key): value for key, value in fields.items()})
            for item in tracks:  # the documented callback spells createTime in camelCase
                item["createTime"] = item.pop("create_time")
            data["data"] = tracks
        return {"code": 200, "msg": CALLBACK_MESSAGES[str(stage.callback)], "data": data}
    if task.kind == "lyrics":  # its callback says taskId (camelCase), and callbackType
        if failure is not None:
            data = {"callbackType": "error", "taskId": task.task_id, "data": None}
            return {"code": failure.code, "msg": failure.message, "data": data}
        data = {"callbackType": "complete", "taskId": task.task_id, "data": _lyrics_items(task)}
        return {"code": 200, "msg": CALLBACK_MESSAGES["complete"], "data": data}
    if failure is not None:
        return {"code": failure.code, "msg": failure.message, "data": {"task_id": task.task_id}}
    result = _result_urls(task, urls, "callback")
    if task.kind == "music_video":
        payload: dict[str, Any] = {"task_id": task.task_id, "video_url": result["videoUrl"]}
    elif task.kind == "wav":
        payload = {"audioWavUrl": result["audioWavUrl"], "task_id": task.task_id}
    else:
        info = {_snake(key): value for key, value in result.items()}
        payload = {"task_id": task.task_id, "vocal_removal_info": info}
    return {"code": 200, "msg": SUCCESS_MESSAGES[task.kind], "data": payload}
