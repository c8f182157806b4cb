"""The dashboard's in-memory picture of the cluster, fed by watch events; no I/O, no clock.

One `Model` serves every browser. Watch events go in through `apply` (one object changed) and `replace`
(a fresh listing of one kind in one namespace); the pages' JSON comes out of `views.py`. Objects are
trimmed on the way in (no managedFields, no pod specs) so 1,000 TaskJobs and their pods stay small.

Each change bumps `version` and names the TaskJob it concerns in `touched`, so the server can tell which
open pages need a new snapshot.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .coreapi import ANNOTATION_STOP_MESSAGE, ANNOTATION_STOP_REASON, KIND, LABEL_ATTEMPT, LABEL_TASK, LABEL_TASKJOB

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
KINDS = ("taskjobs", "jobs", "pods", "events")
MAX_EVENTS = 5000  # Events kept in all, oldest dropped first
ALL = "*"  # touched: every page may have changed (a relist)
STOP_ANNOTATIONS = (ANNOTATION_STOP_REASON, ANNOTATION_STOP_MESSAGE)  # a Job's, kept: the operator is stopping it
DEADLINE = "activeDeadlineSeconds"  # a Job's spec field, kept: its pod's success after it does not count


def key_of(obj: Mapping[str, Any]) -> Key:
    """Return (namespace, name) of an object."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _meta(obj: Mapping[str, Any], *extra: str) -> Obj:
    meta = obj.get("metadata") or {}
    keep = ("name", "namespace", "uid", "labels", "creationTimestamp", "resourceVersion", "deletionTimestamp", *extra)
    return {k: meta[k] for k in keep if k in meta}


def trim(kind: str, obj: Mapping[str, Any]) -> Obj:
    """Return the part of an object the dashboard shows (the rest is dropped to save memory)."""
    if kind == "taskjobs":
        return {
            "metadata": _meta(obj, "annotations", "generation"),
            "spec": obj.get("spec") or {},
            "status": obj.get("status") or {},
        }
    if kind == "jobs":
        # What core.observe's verdict reads besides the status: the operator's stop, the Job's deadline.
        meta = _meta(obj)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        stop = {k: annotations[k] for k in STOP_ANNOTATIONS if k in annotations}
        spec = obj.get("spec") or {}
        return {
            "metadata": {**meta, "annotations": stop} if stop else meta,
            **({"spec": {DEADLINE: spec[DEADLINE]}} if DEADLINE in spec else {}),
            "status": obj.get("status") or {},
        }
    if kind == "pods":
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        return {
            "metadata": _meta(obj),
            # Container names: whether every container exited 0 (the attempt's end, core/observe.py).
            "spec": {"nodeName": spec.get("nodeName"),
                     "containers": [{"name": c.get("name")} for c in spec.get("containers") or ()]},
            "status": {
                k: status[k]
                for k in ("phase", "reason", "message", "startTime", "containerStatuses", "conditions")
                if k in status
            },
        }
    if kind == "events":
        keep = ("type", "reason", "message", "count", "firstTimestamp", "lastTimestamp", "eventTime")
        trimmed: Obj = {k: obj[k] for k in keep if k in obj}
        trimmed["metadata"] = _meta(obj)
        involved = obj.get("involvedObject") or {}
        trimmed["involvedObject"] = {k: involved.get(k) for k in ("kind", "name", "namespace")}
        return trimmed
    raise ValueError(f"unknown kind {kind!r}")


def owner_of(kind: str, obj: Mapping[str, Any]) -> Key | None:
    """Return the TaskJob an object belongs to: itself, its taskjob label, or its Event's subject."""
    ns, name = key_of(obj)
    if kind == "taskjobs":
        return ns, name
    if kind in ("jobs", "pods"):
        owner = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_TASKJOB)
        return (ns, str(owner)) if owner else None
    return None


@dataclass
class Model:
    """TaskJobs, their Jobs and pods, and Events about them, kept current from watches."""

    taskjobs: dict[Key, Obj] = field(default_factory=dict)
    jobs: dict[Key, Obj] = field(default_factory=dict)
    pods: dict[Key, Obj] = field(default_factory=dict)
    events: OrderedDict[Key, Obj] = field(default_factory=OrderedDict)
    version: int = 0
    touched: set[Key | str] = field(default_factory=set)
    synced: set[str] = field(default_factory=set)  # "kind/namespace" listings received at least once
    # Jobs and pods by their TaskJob, so one TaskJob's page does not scan every pod of the cluster.
    owned: dict[str, dict[Key, set[Key]]] = field(default_factory=lambda: {"jobs": {}, "pods": {}})

    def _store(self, kind: str) -> dict[Key, Obj]:
        store: dict[Key, Obj] = getattr(self, kind)
        return store

    def apply(self, kind: str, event_type: str, obj: Mapping[str, Any]) -> bool:
        """Take one watch event (ADDED, MODIFIED, DELETED); return whether the model changed."""
        if kind == "events" and not self._relevant_event(obj):
            return False
        store = self._store(kind)
        key = key_of(obj)
        if event_type == "DELETED":
            old = store.pop(key, None)
            if old is None:
                return False
            self._unindex(kind, key, old)
        elif event_type in ("ADDED", "MODIFIED"):
            old = store.get(key)
            if old is not None:
                self._unindex(kind, key, old)
            store[key] = trim(kind, obj)
            self._index(kind, key, store[key])
            if kind == "events":
                self.events.move_to_end(key)
                while len(self.events) > MAX_EVENTS:
                    self.events.popitem(last=False)
        else:
            return False  # BOOKMARK and the like carry no change
        self._touch(kind, obj)
        return True

    def replace(self, kind: str, namespace: str | None, items: Iterable[Mapping[str, Any]]) -> None:
        """Take a full listing of one kind in one namespace (all when None): objects not in it are gone."""
        store = self._store(kind)
        for key in [k for k in store if namespace is None or k[0] == namespace]:
            self._unindex(kind, key, store.pop(key))
        for obj in items:
            if kind != "events" or self._relevant_event(obj):
                key = key_of(obj)
                store[key] = trim(kind, obj)
                self._index(kind, key, store[key])
        if kind == "events":
            ordered = sorted(self.events.items(), key=lambda kv: _event_time(kv[1]))[-MAX_EVENTS:]
            self.events = OrderedDict(ordered)
        self.synced.add(f"{kind}/{namespace or ALL}")
        self.version += 1
        self.touched.add(ALL)

    def _index(self, kind: str, key: Key, obj: Obj) -> None:
        owner = owner_of(kind, obj) if kind in self.owned else None
        if owner is not None:
            self.owned[kind].setdefault(owner, set()).add(key)

    def _unindex(self, kind: str, key: Key, obj: Obj) -> None:
        owner = owner_of(kind, obj) if kind in self.owned else None
        if owner is not None and owner in self.owned[kind]:
            self.owned[kind][owner].discard(key)
            if not self.owned[kind][owner]:
                del self.owned[kind][owner]

    def _touch(self, kind: str, obj: Mapping[str, Any]) -> None:
        self.version += 1
        owner = owner_of(kind, obj) if kind != "events" else self._event_owner(obj)
        self.touched.add(owner if owner is not None else ALL)

    def take_touched(self) -> set[Key | str]:
        """Return the TaskJobs changed since the last call (ALL when any page may have), and forget them."""
        touched, self.touched = self.touched, set()
        return touched

    # ---- Events: only those about TaskJobs and their Jobs and pods are kept

    def _event_owner(self, event: Mapping[str, Any]) -> Key | None:
        involved = event.get("involvedObject") or {}
        ns, name, kind = str(involved.get("namespace") or ""), str(involved.get("name") or ""), involved.get("kind")
        if kind == KIND:
            return ns, name
        if kind not in ("Job", "Pod"):
            return None
        obj = (self.jobs if kind == "Job" else self.pods).get((ns, name))
        if obj is not None:
            return owner_of("jobs", obj)
        # The Job or pod may not be here yet (its watch runs apart from the Events'): its name starts with
        # its TaskJob's (Job `<taskjob>-<task>-<attempt>`, pod `<job>-<suffix>`).
        owners = [tj for (tj_ns, tj) in self.taskjobs if tj_ns == ns and name.startswith(tj + "-")]
        return (ns, max(owners, key=len)) if owners else None

    def _relevant_event(self, event: Mapping[str, Any]) -> bool:
        return self._event_owner(event) is not None

    # ---- lookups for the views

    def children(self, kind: str, owner: Key) -> list[Obj]:
        """Return the Jobs or pods of one TaskJob."""
        store = self._store(kind)
        return [store[key] for key in self.owned[kind].get(owner, ())]

    def events_about(self, namespace: str, names: set[tuple[str, str]]) -> list[Obj]:
        """Return the Events whose subject is one of (kind, name) in the namespace, oldest first."""
        found = []
        for event in self.events.values():
            involved = event["involvedObject"]
            if involved.get("namespace") == namespace and (involved.get("kind"), involved.get("name")) in names:
                found.append(event)
        return found


def _event_time(event: Mapping[str, Any]) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")


def attempt_of(obj: Mapping[str, Any]) -> tuple[str, int]:
    """Return (task, attempt) from a Job's or pod's labels (attempt 0 when unreadable)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    try:
        attempt = int(labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        attempt = 0
    return str(labels.get(LABEL_TASK, "")), attempt
