"""Decode Jobs, pods and ConfigMaps keeping only the fields the store and `core.observe` read.

A watch event of a pod is 5-10 KB of JSON; parsed whole into dicts it is ~30 KB of Python objects, of
which the facts need a handful of fields. msgspec decodes into typed structs that name those fields and
skips the rest in C, then `to_builtins` gives the plain dicts (camelCase, as the API spells them) that
observe.py reads. What is kept: metadata (name, namespace, uid, resourceVersion, timestamps, our labels
and the job-name one, our stop annotations, ownerReferences), a Job's deadline, status conditions and times, a
pod's phase, reason, conditions and container states, the names of its containers (the termination
message limit), a ConfigMap's data.
A test checks that the facts of the decoded objects equal those of the full ones.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..core.naming import LABEL_ATTEMPT, LABEL_TASK, LABEL_TASKJOB
from ..core.observe import JOB_NAME_LABELS
from ..core.render import ANNOTATION_STOP_MESSAGE, ANNOTATION_STOP_REASON


class _Labels(msgspec.Struct, omit_defaults=True):
    """The labels read: ours and the Job controller's job-name (a pod's has 7, a Job's 5 or more)."""

    taskjob: str | None = msgspec.field(default=None, name=LABEL_TASKJOB)
    task: str | None = msgspec.field(default=None, name=LABEL_TASK)
    attempt: str | None = msgspec.field(default=None, name=LABEL_ATTEMPT)
    job_name: str | None = msgspec.field(default=None, name=JOB_NAME_LABELS[0])
    old_job_name: str | None = msgspec.field(default=None, name=JOB_NAME_LABELS[1])


class _Annotations(msgspec.Struct, omit_defaults=True):
    """The annotations read: why the operator stopped the Job."""

    stop_reason: str | None = msgspec.field(default=None, name=ANNOTATION_STOP_REASON)
    stop_message: str | None = msgspec.field(default=None, name=ANNOTATION_STOP_MESSAGE)


class _Ref(msgspec.Struct, omit_defaults=True):
    kind: str | None = None
    name: str | None = None
    uid: str | None = None
    controller: bool | None = None


class _Meta(msgspec.Struct, omit_defaults=True):
    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None  # noqa: N815 - the API's spelling
    creationTimestamp: str | None = None  # noqa: N815
    deletionTimestamp: str | None = None  # noqa: N815
    labels: _Labels | None = None
    annotations: _Annotations | None = None
    ownerReferences: list[_Ref] | None = None  # noqa: N815


class _Condition(msgspec.Struct, omit_defaults=True):
    type: str | None = None
    status: str | None = None
    reason: str | None = None
    message: str | None = None
    lastTransitionTime: str | None = None  # noqa: N815


class _PodCondition(msgspec.Struct, omit_defaults=True):
    type: str | None = None
    status: str | None = None
    reason: str | None = None
    message: str | None = None


class _JobStatus(msgspec.Struct, omit_defaults=True):
    conditions: list[_Condition] | None = None
    startTime: str | None = None  # noqa: N815
    completionTime: str | None = None  # noqa: N815


class _ContainerStatus(msgspec.Struct, omit_defaults=True):
    name: str | None = None
    state: dict[str, dict[str, Any]] | None = None


class _PodStatus(msgspec.Struct, omit_defaults=True):
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    conditions: list[_PodCondition] | None = None
    containerStatuses: list[_ContainerStatus] | None = None  # noqa: N815
    initContainerStatuses: list[_ContainerStatus] | None = None  # noqa: N815


class _Named(msgspec.Struct, omit_defaults=True):
    name: str | None = None


class _PodSpec(msgspec.Struct, omit_defaults=True):
    containers: list[_Named] | None = None
    initContainers: list[_Named] | None = None  # noqa: N815
    ephemeralContainers: list[_Named] | None = None  # noqa: N815


class _Object(msgspec.Struct, omit_defaults=True):
    metadata: _Meta = msgspec.field(default_factory=_Meta)


class _Status(msgspec.Struct):
    """The object of a watch ERROR event: the HTTP code (410: the version expired) and why."""

    code: int | None = None
    message: str | None = None


class _RawEvent(msgspec.Struct):
    type: str
    object: msgspec.Raw  # decoded by type: an ERROR's object is a Status, not an object of the kind


class _JobSpec(msgspec.Struct, omit_defaults=True):
    activeDeadlineSeconds: int | None = None  # noqa: N815 - whether a pod's success came in time (observe.py)


class _Job(_Object, omit_defaults=True):
    spec: _JobSpec | None = None
    status: _JobStatus | None = None


class _Pod(_Object, omit_defaults=True):
    spec: _PodSpec | None = None
    status: _PodStatus | None = None


class _ConfigMap(_Object, omit_defaults=True):
    data: dict[str, str] | None = None


_TYPES: dict[str, type[_Object]] = {"jobs": _Job, "pods": _Pod, "configmaps": _ConfigMap}


def _list_type(kind: str) -> Any:
    meta = msgspec.defstruct("ListMeta", [("resourceVersion", str, "")])
    items: Any = list[_TYPES[kind]] | None  # type: ignore[valid-type]
    return msgspec.defstruct(f"{_TYPES[kind].__name__}List", [("metadata", meta), ("items", items, None)])


_EVENT_DECODER = msgspec.json.Decoder(_RawEvent)
_STATUS_DECODER = msgspec.json.Decoder(_Status)
_OBJECT_DECODERS = {kind: msgspec.json.Decoder(_TYPES[kind]) for kind in _TYPES}
_LIST_DECODERS = {kind: msgspec.json.Decoder(_list_type(kind)) for kind in _TYPES}


class Event(msgspec.Struct):
    """One watch event: its type, the object's essentials as plain dicts, and (ERROR) the Status code."""

    type: str
    object: dict[str, Any]
    code: int | None = None


def decode_event(kind: str, line: bytes) -> Event:
    """Return the essentials of one line of a watch of `kind` (jobs, pods, configmaps)."""
    raw = _EVENT_DECODER.decode(line)
    if raw.type == "ERROR":
        status = _STATUS_DECODER.decode(raw.object)
        return Event(raw.type, {"message": status.message}, status.code)
    return Event(raw.type, msgspec.to_builtins(_OBJECT_DECODERS[kind].decode(raw.object)))


def decode_list(kind: str, data: bytes) -> tuple[list[dict[str, Any]], str]:
    """Return the essentials of every item of a LIST of `kind`, and the list's resourceVersion."""
    raw = _LIST_DECODERS[kind].decode(data)
    return [msgspec.to_builtins(item) for item in raw.items or ()], raw.metadata.resourceVersion


def essentials(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Return the essentials of an already parsed object (a create's response, a test's manifest)."""
    return msgspec.to_builtins(msgspec.convert(body, _TYPES[kind], strict=False))  # type: ignore[no-any-return]


def decode_object(kind: str, data: bytes) -> dict[str, Any]:
    """Return the essentials of one object of `kind` in JSON (an API answer, e.g. a create's)."""
    return msgspec.to_builtins(_OBJECT_DECODERS[kind].decode(data))  # type: ignore[no-any-return]
