"""Pipelines: references between jobs, checked when a job is recorded and resolved when it
is released. Pure: no I/O; the daemon's releaser (:mod:`orchestrator.daemon.releaser`) reads
the jobs and acts on what :func:`settle` decides.

A job with ``after`` parents is recorded `waiting`. Its params may hold references to what
its parents produced:

* ``${KEY.task_id}``: the parent's upstream taskId;
* ``${KEY.tracks[N].FIELD}``: a field of the parent's N-th track (:data:`TRACK_FIELDS`);
* ``${KEY.result.PATH}``: anything else in the parent's normalised result (``a.b[0].c``);
* ``${item.FIELD}`` (or ``${item}``): inside a ``for_each`` job, the item its child is for.

A value that is exactly one reference keeps the referenced value's type; inside a longer
string a reference is formatted as text. ``$$`` is a literal ``$``. ``for_each`` names a list,
``KEY.tracks`` or ``KEY.result.PATH``: once the parents complete, one child ``JOB.0``,
``JOB.1``, ... is recorded per item with its params resolved, and the for_each job itself
stays `waiting` until its children are done (then `completed`; a child that does not
complete fails it at stage ``dependency``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final

from orchestrator.domain import JSON, Job
from orchestrator.exceptions import InvalidParams
from orchestrator.kinds import KINDS
from orchestrator.observations import Track
from orchestrator.states import JobState

#: fields of a normalised track, for ``${KEY.tracks[N].FIELD}`` and ``${item.FIELD}``
TRACK_FIELDS: Final = frozenset(f.name for f in fields(Track))
#: the key that names the item inside a for_each job's params
ITEM: Final = "item"
#: most children one for_each job makes (a result with more items fails it)
MAX_CHILDREN: Final = 100

#: the parent states that end their descendants `failed` at stage "dependency"
FAILED_PARENT: Final = frozenset({JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED})

#: error codes of a job failed by its pipeline (JobError.code)
PARENT_FAILED: Final = "parent_failed"  #: revived to `waiting` when the parent is retried
BAD_REFERENCE: Final = "bad_reference"  #: a reference the parent's result cannot satisfy

#: "$$", a whole "${...}", or a "${" that is never closed; any other "$" is literal text
_TOKEN = re.compile(r"\$\$|\$\{([^{}]*)\}|\$\{")
_INDEX = re.compile(r"\[(\d+)\]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


class PipelineError(InvalidParams):
    """A reference, ``after`` or ``for_each`` that cannot work (unknown parent, a cycle, an
    unknown field, ...), named with the job and the param it sits in."""


@dataclass(frozen=True)
class Ref:
    """One ``${...}``: whose value (a parent's key, or :data:`ITEM`) and the path into it."""

    key: str
    path: tuple[str | int, ...]
    text: str  #: as written, for messages

    @property
    def section(self) -> str:
        """ "task_id", "tracks", "result" or "item"."""
        return ITEM if self.key == ITEM else str(self.path[0])


def _path(text: str, where: str) -> tuple[str | int, ...]:
    """``a.b[0].c`` as ("a", "b", 0, "c")."""
    path: list[str | int] = []
    for segment in text.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise PipelineError(f"{where}: cannot read {segment!r} (want NAME or NAME[N])")
        path.append(match.group(1))
        path += [int(n) for n in _INDEX.findall(match.group(2))]
    return tuple(path)


def parse_ref(body: str, where: str) -> Ref:
    """The reference inside ``${body}``."""
    text = "${" + body + "}"
    body = body.strip()
    if body == ITEM:
        return Ref(ITEM, (), text)
    if body.startswith(ITEM + "."):
        return Ref(ITEM, _path(body[len(ITEM) + 1 :], f"{where} {text}"), text)
    # KEY may itself hold dots (a for_each child is "video.0"): split at the section word
    match = re.fullmatch(r"(.+?)\.(task_id|tracks\[\d+\](?:\.[^.].*)?|result(?:\..+)?)", body)
    if match is None:
        raise PipelineError(
            f"{where}: {text} is not a reference; use ${{KEY.task_id}}, ${{KEY.tracks[N].FIELD}}, "
            "${KEY.result.PATH} or ${item.FIELD} (write $$ for a literal $)"
        )
    key, rest = match.group(1), match.group(2)
    path = _path(rest, f"{where} {text}")
    if path[0] == "tracks" and len(path) != 3:
        raise PipelineError(f"{where}: {text} names a track; add the field: tracks[N].FIELD")
    return Ref(key, path, text)


def _pieces(value: str, where: str) -> list[str | Ref]:
    """A string as literal text and references, in order."""
    pieces: list[str | Ref] = []
    at = 0
    for match in _TOKEN.finditer(value):
        if match.start() > at:
            pieces.append(value[at : match.start()])
        found = match.group(0)
        if found == "$$":
            pieces.append("$")
        elif match.group(1) is None:
            raise PipelineError(f"{where}: '${{' is never closed (write $$ for a literal $)")
        else:
            pieces.append(parse_ref(match.group(1), where))
        at = match.end()
    if at < len(value):
        pieces.append(value[at:])
    return pieces


def _walk(value: Any, where: str) -> Iterable[tuple[str, Ref]]:
    if isinstance(value, str):
        for piece in _pieces(value, where):
            if isinstance(piece, Ref):
                yield where, piece
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from _walk(item, f"{where}.{name}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _walk(item, f"{where}[{n}]")


def references(params: Mapping[str, Any]) -> list[tuple[str, Ref]]:
    """Every reference in ``params``, with the param it sits in ("params.audioId")."""
    found: list[tuple[str, Ref]] = []
    for name, value in params.items():
        found += _walk(value, f"params.{name}")
    return found


def for_each_ref(text: str, where: str) -> Ref:
    """``for_each = "KEY.tracks"`` or ``"KEY.result.PATH"`` as a reference to a list."""
    if text.endswith(".tracks"):
        return Ref(text[: -len(".tracks")], ("tracks",), text)
    ref = parse_ref(text, where) if ".result" in text else None
    if ref is None or ref.key == ITEM or ref.section != "result" or len(ref.path) < 2:
        raise PipelineError(
            f"{where}: for_each must be KEY.tracks or KEY.result.PATH, not {text!r}"
        )
    return Ref(ref.key, ref.path, text)


# --- checking, when a job is recorded -----------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A job to record, as far as the pipeline is concerned."""

    key: str
    kind: str
    params: Mapping[str, Any]
    after: tuple[str, ...] = ()
    for_each: str | None = None


@dataclass(frozen=True)
class Known:
    """What a parent is: its kind, and whether it is a for_each job (it has no task of its
    own: its children do)."""

    kind: str
    for_each: str | None = None


def _family(kind: str) -> str | None:
    known = KINDS.get(kind)
    return known.family if known else None


def _check_ref(ref: Ref, where: str, spec: Spec, parents: Mapping[str, Known]) -> None:
    if ref.key == ITEM:
        if spec.for_each is None:
            raise PipelineError(f"job {spec.key!r} {where}: {ref.text} needs for_each")
        over = for_each_ref(spec.for_each, f"job {spec.key!r} for_each")
        if (
            over.section == "tracks"
            and ref.path
            and (len(ref.path) != 1 or ref.path[0] not in TRACK_FIELDS)
        ):
            raise PipelineError(
                f"job {spec.key!r} {where}: {ref.text}: a track has no field "
                f"{'.'.join(map(str, ref.path))!r} (fields: {', '.join(sorted(TRACK_FIELDS))})"
            )
        return
    parent = parents.get(ref.key)
    if parent is None:
        raise PipelineError(
            f"job {spec.key!r} {where}: {ref.text} refers to {ref.key!r}, which is not one of "
            f"its parents (after = {list(spec.after)})"
        )
    if parent.for_each is not None:
        raise PipelineError(
            f"job {spec.key!r} {where}: {ref.text}: {ref.key!r} is a for_each job; it has no "
            f"result of its own (refer to its children, {ref.key}.0, {ref.key}.1, ...)"
        )
    if ref.section == "tracks":
        if _family(parent.kind) not in (None, "music"):
            raise PipelineError(
                f"job {spec.key!r} {where}: {ref.text}: {parent.kind} results have no tracks"
                " (use ${KEY.result.video_url})"
            )
        field_name = ref.path[2]
        if field_name not in TRACK_FIELDS:
            raise PipelineError(
                f"job {spec.key!r} {where}: {ref.text}: a track has no field {field_name!r} "
                f"(fields: {', '.join(sorted(TRACK_FIELDS))})"
            )


def check(spec: Spec, lookup: Callable[[str], Known | None]) -> None:
    """Refuse ``after``, ``for_each`` and references that cannot work, naming the job and the
    param. ``lookup`` says what a parent key is (None: unknown)."""
    if len(set(spec.after)) != len(spec.after):
        raise PipelineError(f"job {spec.key!r}: after lists a parent twice: {list(spec.after)}")
    if spec.key in spec.after:
        raise PipelineError(f"job {spec.key!r}: a job cannot wait for itself")
    parents: dict[str, Known] = {}
    for key in spec.after:
        known = lookup(key)
        if known is None:
            raise PipelineError(f"job {spec.key!r}: after names {key!r}, which is no known job")
        parents[key] = known
    if spec.for_each is not None:
        if not spec.after:
            raise PipelineError(f"job {spec.key!r}: for_each needs after (its list's owner)")
        over = for_each_ref(spec.for_each, f"job {spec.key!r} for_each")
        # checked as a reference to one of its items (KEY.tracks as KEY.tracks[0].id)
        path = (*over.path, 0, "id") if over.section == "tracks" else over.path
        _check_ref(Ref(over.key, path, over.text), "for_each", spec, parents)
    if spec.for_each is None and not spec.after:
        # a job outside a pipeline keeps its params as written ("$$" too); only a reference
        # that would silently stay unresolved is refused
        try:
            found = references(spec.params)
        except PipelineError:
            return
        if found:
            where, ref = found[0]
            raise PipelineError(f"job {spec.key!r} {where}: {ref.text} needs after (its parent)")
        return
    found = _references_of(spec)
    for where, ref in found:
        _check_ref(ref, where, spec, parents)


def _references_of(spec: Spec) -> list[tuple[str, Ref]]:
    try:
        return references(spec.params)
    except PipelineError as exc:
        raise PipelineError(f"job {spec.key!r} {exc}") from None


def check_all(specs: Sequence[Spec], lookup: Callable[[str], Known | None]) -> None:
    """:func:`check` for jobs recorded together (a config): parents among them or already
    recorded (``lookup``), and no cycle."""
    mine = {spec.key: spec for spec in specs}

    def known(key: str) -> Known | None:
        spec = mine.get(key)
        if spec is not None:
            return Known(spec.kind, spec.for_each)
        return lookup(key)

    for spec in specs:
        check(spec, known)
    cycle = _cycle({key: spec.after for key, spec in mine.items()})
    if cycle:
        raise PipelineError(f"jobs wait for each other in a cycle: {' -> '.join(cycle)}")


def _cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle in ``graph`` (key -> parents), as a path that ends where it began, or None."""
    done: set[str] = set()
    for start in graph:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, Iterable[str]]] = [(start, iter(graph.get(start, ())))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, parents = stack[-1]
            step = next(iter(parents), None)
            if step is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if step in on_path:
                return [*path[path.index(step) :], step]
            if step in done or step not in graph:
                continue
            stack.append((step, iter(graph.get(step, ()))))
            path.append(step)
            on_path.add(step)
    return None


def ordered(specs: Sequence[Spec]) -> list[Spec]:
    """Parents before their children (the order in the file otherwise)."""
    mine = {spec.key: spec for spec in specs}
    placed: set[str] = set()
    out: list[Spec] = []

    def place(spec: Spec) -> None:
        if spec.key in placed:
            return
        placed.add(spec.key)
        for parent in spec.after:
            if parent in mine:
                place(mine[parent])
        out.append(spec)

    for spec in specs:
        place(spec)
    return out


# --- resolving, when the parents completed ------------------------------------------------------


def _lookup(value: Any, path: Sequence[str | int], text: str) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                have = len(value) if isinstance(value, list) else 0
                raise PipelineError(f"{text}: there is no item [{step}] (the list has {have})")
            value = value[step]
        else:
            if not isinstance(value, Mapping) or step not in value:
                raise PipelineError(f"{text}: there is no field {step!r}")
            value = value[step]
    return value


def _value(ref: Ref, parents: Mapping[str, Job], item: Any) -> Any:
    if ref.key == ITEM:
        found = _lookup(item, ref.path, ref.text)
    else:
        parent = parents.get(ref.key)
        if parent is None:
            raise PipelineError(f"{ref.text}: {ref.key!r} is not a parent of this job")
        if ref.path == ("task_id",):
            found = parent.task_id
        else:
            result = parent.result or {}
            path = ref.path[1:] if ref.section == "result" else ref.path
            found = _lookup(result, path, ref.text)
    if found is None:
        raise PipelineError(f"{ref.text} is empty (null) in the parent's result")
    return found


def _resolve_value(value: Any, parents: Mapping[str, Job], item: Any, where: str) -> Any:
    if isinstance(value, str):
        pieces = _pieces(value, where)
        if len(pieces) == 1 and isinstance(pieces[0], Ref):
            return _value(pieces[0], parents, item)  # exactly one reference: keep its type
        out: list[str] = []
        for piece in pieces:
            if isinstance(piece, Ref):
                found = _value(piece, parents, item)
                if isinstance(found, (dict, list)):
                    raise PipelineError(f"{where}: {piece.text} is not text; it cannot be spliced")
                out.append(str(found).lower() if isinstance(found, bool) else str(found))
            else:
                out.append(piece)
        return "".join(out)
    if isinstance(value, Mapping):
        return {k: _resolve_value(v, parents, item, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_value(v, parents, item, f"{where}[{n}]") for n, v in enumerate(value)]
    return value


def resolve(template: Mapping[str, Any], parents: Mapping[str, Job], item: Any = None) -> JSON:
    """``template`` with every reference replaced by the parents' values (and ``item``'s)."""
    return {
        name: _resolve_value(value, parents, item, f"params.{name}")
        for name, value in template.items()
    }


def items(for_each: str, parents: Mapping[str, Job]) -> list[Any]:
    """The list a for_each job makes one child per item of."""
    ref = for_each_ref(for_each, "for_each")
    found = _value(Ref(ref.key, ref.path, ref.text), parents, None)
    if not isinstance(found, list):
        raise PipelineError(f"for_each {for_each!r} is not a list")
    return found


def child_key(key: str, n: int) -> str:
    return f"{key}.{n}"


# --- settling, as the releaser sees a waiting job -----------------------------------------------


@dataclass(frozen=True)
class Wait:
    why: str


@dataclass(frozen=True)
class Release:
    params: JSON


@dataclass(frozen=True)
class Expand:
    """Record these children (key, params), then mark the for_each job expanded."""

    children: tuple[tuple[str, JSON], ...]


@dataclass(frozen=True)
class Done:
    """A for_each job whose children all completed."""


@dataclass(frozen=True)
class Fail:
    code: str
    message: str


Decision = Wait | Release | Expand | Done | Fail


def expanded(job: Job) -> tuple[str, ...] | None:
    """The children a for_each job made (None: not expanded yet)."""
    if job.result is None or "children" not in job.result:
        return None
    return tuple(job.result["children"])


def _ended(jobs: Iterable[tuple[str, Job | None]], what: str) -> Fail | None:
    for key, other in jobs:
        if other is None:
            return Fail(PARENT_FAILED, f"{what} {key!r} does not exist")
        if other.state in FAILED_PARENT:
            return Fail(PARENT_FAILED, f"{what} {key!r} ended {other.state.value}")
    return None


def _waiting_for(jobs: Iterable[tuple[str, Job | None]], what: str) -> str:
    open_ = [f"{key} ({job.state.value})" for key, job in jobs if job is not None]
    return f"waiting for {what} {', '.join(open_)}"


def settle(job: Job, related: Mapping[str, Job | None]) -> Decision:
    """What a `waiting` job should do now, given its parents (and, for an expanded for_each
    job, its children) by key."""
    children = expanded(job)
    if children is not None:  # a for_each job after expansion: its children are what it awaits
        members = [(key, related.get(key)) for key in children]
        failed = _ended(members, "child")
        if failed:
            return failed
        open_ = [(k, c) for k, c in members if c is None or c.state != JobState.COMPLETED]
        return Done() if not open_ else Wait(_waiting_for(open_, "children"))
    parents = [(key, related.get(key)) for key in job.parents]
    failed = _ended(parents, "parent")
    if failed:
        return failed
    open_ = [(k, p) for k, p in parents if p is None or p.state != JobState.COMPLETED]
    if open_:
        return Wait(_waiting_for(open_, "parent" if len(open_) == 1 else "parents"))
    done = {key: p for key, p in parents if p is not None}
    template = job.template if job.template is not None else job.params
    try:
        if job.for_each is None:
            return Release(resolve(template, done))
        found = items(job.for_each, done)
        if len(found) > MAX_CHILDREN:
            return Fail(
                BAD_REFERENCE,
                f"for_each {job.for_each!r} has {len(found)} items; at most {MAX_CHILDREN}",
            )
        return Expand(
            tuple(
                (child_key(job.key, n), resolve(template, done, item))
                for n, item in enumerate(found)
            )
        )
    except PipelineError as exc:
        return Fail(BAD_REFERENCE, str(exc))


def related_keys(job: Job) -> tuple[str, ...]:
    """The jobs :func:`settle` needs to see for ``job``."""
    children = expanded(job)
    return children if children is not None else job.parents


def unresolved_fields(params: Mapping[str, Any]) -> frozenset[str]:
    """Top-level params whose value holds a reference (checked once resolved)."""
    return frozenset(name for name, value in params.items() if any(_walk(value, name)))
