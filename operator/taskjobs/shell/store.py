"""What the operator has seen: TaskJobs, their Jobs and pods, kept current by watch events.

Reconciles read this instead of LISTing on every event. Jobs the operator just created but has not
seen yet are kept as expectations (as the Job controller does), so a reconcile that runs before the
watch delivers them neither launches the attempt twice nor exceeds parallelism.

Memory is kept proportional to the live attempts (B4: 10,000 tasks in one replica). A live Job and its
pods are kept as the JSON of their essentials (a fifth of the same as dicts), decoded when their fact is
read again. An attempt whose fact is final (Succeeded or Failed, not awaiting its pod's verdict) keeps
only that fact: its Job and pods are dropped, later events of them change nothing, and only the Job's
deletion (an event, or its absence from a fresh LIST) removes the fact. "Final stays final": the pod
of a finished Job being garbage-collected no longer turns its fact into one without an exit code.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from ..core.facts import AttemptFact
from ..core.naming import LABEL_TASKJOB
from ..core.observe import attempt_fact, pod_job_name, pod_success

Key = tuple[str, str]  # (namespace, taskjob name)
Body = Mapping[str, Any]


def job_finished(job: Body) -> bool:
    """Return whether the Job has its final condition (Complete or Failed)."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)


def _uid(body: Body | None) -> str | None:
    return (body or {}).get("metadata", {}).get("uid") or None


def _owned_by(body: Body, uid: str | None) -> bool:
    """Return False only when `body` names owners and `uid` is not among them."""
    refs = body.get("metadata", {}).get("ownerReferences") or ()
    return uid is None or not refs or any(ref.get("uid") == uid for ref in refs)


def _rv(body: Body) -> int:
    try:
        return int(body.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:  # resourceVersions are opaque; every API server we know uses integers
        return 0


Packed = bytes  # the JSON of an object's essentials (msgspec-encoded): a fifth of the same as dicts
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _pack(body: Body) -> Packed:
    return _encode(body)


def _unpack(packed: Packed) -> dict[str, Any]:
    body: dict[str, Any] = _decode(packed)
    return body


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


class PackedJson(Mapping[str, Any]):
    """A JSON object kept encoded, decoded at each read: a kept TaskJob's spec.

    A reconcile reads the spec parsed (the validation cache, per uid and generation); the dicts of the
    watched spec were read again only when that cache misses, and were 4.7 KB of each live TaskJob of
    B4, 0.5 KB as JSON (docs/performance.md, session 7). Its one reader, validation, walks it whole with
    items(): one decode. A reader of parts calls value() once and reads the dict: each `spec[...]`,
    len() or values() decodes all of it again (a test counts the decodes of a reconcile).
    """

    __slots__ = ("packed",)

    def __init__(self, value: Mapping[str, Any]) -> None:
        self.packed: Packed = _encode(value)

    def value(self) -> dict[str, Any]:
        """Return the object decoded (a new dict at each call)."""
        return _unpack(self.packed)

    def __getitem__(self, name: str) -> Any:
        return self.value()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.value())

    def __len__(self) -> int:
        return len(self.value())

    def items(self) -> Any:  # one decode for a whole walk (validation's)
        return self.value().items()

    def __repr__(self) -> str:
        return f"PackedJson({self.value()!r})"


def final(fact: AttemptFact) -> bool:
    """Return whether no later event of the attempt's Job or pods may change its fact."""
    return fact.phase in ("Succeeded", "Failed") and not fact.awaiting_pod


@dataclass(slots=True)
class FinalJob:
    """A Job whose attempt ended: its fact, and what telling it from another Job of its name needs."""

    fact: AttemptFact
    uid: str | None  # the Job's own
    owners: tuple[str, ...]  # the uids of its ownerReferences (a TaskJob's)
    rv: int  # the last resourceVersion seen (prune)


def _owners(body: Body) -> tuple[str, ...]:
    return tuple(ref.get("uid") or "" for ref in body.get("metadata", {}).get("ownerReferences") or ())


@dataclass
class Written:
    """The status this operator last wrote, kept while the watched object holds the same status."""

    resource_version: int
    status: dict[str, Any]
    checked: int = -1  # a resourceVersion the watch showed holding exactly this status


@dataclass
class FactMap:
    """The facts of one TaskJob's Jobs (owned by the TaskJob of this uid), by Job name."""

    uid: str | None
    facts: dict[str, AttemptFact]


Token = tuple[int, int]  # (epoch, sequence number): a point in the store's change log


class PodNews(NamedTuple):
    """What a pod event told: the TaskJob to wake (None: nothing a reconcile would see changed), and how soon.

    `verdict`: the pod ended (succeeded, failed, gone), so a dependent may start or a retry be planned now.
    A pod still Pending or Running whose containers all exited 0 is one: its attempt has succeeded
    (observe.py). Otherwise the event is live news (scheduled, started, waiting), which may wait a moment.
    """

    key: Key | None
    verdict: bool


@dataclass
class Store:
    """In-memory view of the objects the operator owns, by TaskJob key."""

    taskjobs: dict[Key, Body] = field(default_factory=dict)
    jobs: dict[Key, dict[str, Packed]] = field(default_factory=lambda: defaultdict(dict))  # live attempts
    pods: dict[tuple[str, str], dict[str, Packed]] = field(default_factory=lambda: defaultdict(dict))  # (ns, job)
    finals: dict[Key, dict[str, FinalJob]] = field(default_factory=dict)  # ended attempts: their facts only
    outputs: dict[Key, dict[str, str]] = field(default_factory=dict)  # from the outputs ConfigMap
    expected: dict[Key, dict[str, AttemptFact]] = field(default_factory=lambda: defaultdict(dict))
    written: dict[Key, Written] = field(default_factory=dict)
    finished_seen: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (ns, job) -> first seen done
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))  # when a watch event is seen
    # Facts by Job, per TaskJob, kept up to date by Job and pod events (10,000-task DAGs).
    _maps: dict[Key, FactMap] = field(default_factory=dict)
    # Which Jobs of each TaskJob changed, in order of change: Job name -> sequence number of its last change.
    _log: dict[Key, OrderedDict[str, int]] = field(default_factory=dict)
    _seq: int = 0
    _epoch: int = 0  # bumped by clear(): a change log from before it is no guide to what changed

    # ---- updates from watch events (type None = initial listing)

    def _refresh(self, key: Key, job: str) -> bool:
        """Bring the Job's fact up to date after an event; return whether it changed.

        An unchanged fact keeps its object: the plan memory tells changed Jobs by identity.
        """
        facts = self._maps.get(key)
        if facts is None or facts.uid != _uid(self.taskjobs.get(key)):
            self._touch(key, job)
            return True  # no fact map to compare with (it is built at the next read)
        try:
            fact = self._fact_of(key, job, facts.uid)
        except Exception:  # noqa: BLE001 - a malformed object: the next read rebuilds, and its reconcile reports it
            del self._maps[key]
            self._touch(key, job)
            return True
        if fact is not None:
            self._settle(key, job, fact)
        if fact == facts.facts.get(job):
            return False
        if fact is None:
            del facts.facts[job]
        else:
            facts.facts[job] = fact
        self._touch(key, job)
        return True

    def _settle(self, key: Key, name: str, fact: AttemptFact) -> None:
        """Once the attempt's fact is final, keep the fact and drop its Job and pods."""
        if not final(fact):
            return
        packed = self.jobs.get(key, {}).pop(name, None)
        if packed is None:
            return
        job = _unpack(packed)
        self.pods.pop((key[0], name), None)
        self.finals.setdefault(key, {})[name] = FinalJob(fact, _uid(job), _owners(job), _rv(job))

    def _touch(self, key: Key, job: str) -> None:
        """Log that the fact of a Job of this TaskJob may have changed."""
        self._seq += 1
        log = self._log.get(key)
        if log is None:
            log = self._log[key] = OrderedDict()
        log[job] = self._seq
        log.move_to_end(job)

    def on_taskjob(self, event_type: str | None, body: Body) -> Key:
        """Record a TaskJob event; return its key."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self.forget(key)
        else:
            # managedFields are about a third of a TaskJob and nothing here reads them; kubectl's
            # last-applied annotation is the whole manifest again.
            meta = {k: v for k, v in meta.items() if k != "managedFields"}
            if LAST_APPLIED in (meta.get("annotations") or {}):
                meta["annotations"] = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
            kept = {**body, "metadata": meta}
            spec = body.get("spec")
            if isinstance(spec, Mapping):
                kept["spec"] = self._packed_spec(key, meta, spec)
            written = self.written.get(key)
            status = body.get("status")
            if written is not None and status is not written.status and status == written.status:
                kept["status"] = written.status  # the echo of our write: one copy of the status, not two
            self.taskjobs[key] = kept
        return key

    def _packed_spec(self, key: Key, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return the spec to keep: the one kept already while uid and generation are the same (the spec
        changes only with its generation), else the new one, encoded."""
        previous = self.taskjobs.get(key)
        if previous is not None and isinstance(previous.get("spec"), PackedJson):
            old = previous["metadata"]
            if old.get("uid") == meta.get("uid") and old.get("generation") == meta.get("generation"):
                packed: PackedJson = previous["spec"]
                return packed
        try:
            return PackedJson(spec)
        except (TypeError, msgspec.EncodeError):  # not plain JSON (never from the API server): kept as given
            return spec

    def on_job(self, event_type: str | None, body: Body) -> Key | None:
        """Record a Job event; return the key of its TaskJob if the event changed what a reconcile would see.

        `body` is kept as given: the watch hands over only its essentials (`essentials.py`), a few hundred
        bytes instead of a full object. A reconcile reads a Job and its pods only as their AttemptFact; most
        events (a pod scheduled, the Job's `active` count, the watch echoing a Job the operator just
        recorded) leave it as it was, and waking a reconcile for them cost more than half of the
        operator's reconciles (B4, issue 7).
        """
        meta = body["metadata"]
        owner = meta.get("labels", {}).get(LABEL_TASKJOB)
        if not owner:
            return None
        key = (meta["namespace"], owner)
        name = meta["name"]
        ended = self.finals.get(key, {}).get(name)
        if event_type == "DELETED":
            if ended is not None and ended.uid != (meta.get("uid") or None):
                return None  # another Job of that name: the one whose fact is kept is still there
            self.jobs[key].pop(name, None)
            self.finals.get(key, {}).pop(name, None)
            self.pods.pop((meta["namespace"], name), None)
            self.finished_seen.pop((meta["namespace"], name), None)
        elif ended is not None and ended.uid == (meta.get("uid") or None):
            ended.rv = max(ended.rv, _rv(body))  # its fact is final: nothing it says now changes it
            self.expected.get(key, {}).pop(name, None)
            return None
        else:
            if ended is not None:  # a new Job of the same name (a TaskJob deleted and made again)
                del self.finals[key][name]
                self.pods.pop((meta["namespace"], name), None)
            self.jobs[key][name] = _pack(body)
            self.expected[key].pop(name, None)
            if event_type is not None and job_finished(body) and (meta["namespace"], name) not in self.finished_seen:
                self.finished_seen[(meta["namespace"], name)] = self.clock()
        return key if self._refresh(key, name) else None

    def on_pod(self, event_type: str | None, body: Body) -> PodNews:
        """Record a pod event; return the key of its TaskJob if the event changed what a reconcile would see,
        and whether the event is a verdict (see PodNews)."""
        meta = body["metadata"]
        owner = meta.get("labels", {}).get(LABEL_TASKJOB)
        job = pod_job_name(body)
        if not owner or not job:
            return PodNews(None, False)
        key = (meta["namespace"], owner)
        ended = self.finals.get(key, {}).get(job)
        if ended is not None and _owned_by(body, ended.uid):
            return PodNews(None, False)  # a pod of an attempt whose fact is final
        bucket = self.pods[(meta["namespace"], job)]
        if event_type == "DELETED":
            bucket.pop(meta["name"], None)
            verdict = True
        else:
            bucket[meta["name"]] = _pack(body)
            succeeded = pod_success(body)[0]
            # The attempt may end by the pod's success (observe.py): when it was seen is its finish time.
            if succeeded and event_type is not None and (meta["namespace"], job) not in self.finished_seen:
                self.finished_seen[(meta["namespace"], job)] = self.clock()
            verdict = succeeded or (body.get("status") or {}).get("phase") not in ("Pending", "Running")
        return PodNews(key if self._refresh(key, job) else None, verdict)

    def on_outputs(self, event_type: str | None, body: Body) -> None:
        """Record the outputs ConfigMap of a TaskJob."""
        meta = body["metadata"]
        owner = meta.get("labels", {}).get(LABEL_TASKJOB)
        if not owner:
            return
        key = (meta["namespace"], owner)
        if event_type == "DELETED":
            self.outputs.pop(key, None)
        else:
            self.outputs[key] = dict(body.get("data") or {})

    def clear(self) -> None:
        """Forget everything (before loading the world again); our own unobserved writes are kept."""
        self.taskjobs.clear()
        self.jobs.clear()
        self.pods.clear()
        self.finals.clear()
        self.outputs.clear()
        self._maps.clear()
        self._log.clear()
        self._epoch += 1

    def forget(self, key: Key) -> None:
        """Drop everything about a deleted TaskJob (its Jobs and pods go with it by garbage collection)."""
        self.taskjobs.pop(key, None)
        for name in [*self.jobs.pop(key, {}), *self.finals.pop(key, {})]:
            self.pods.pop((key[0], name), None)
            self.finished_seen.pop((key[0], name), None)
        self._maps.pop(key, None)
        self._log.pop(key, None)
        self.expected.pop(key, None)
        self.written.pop(key, None)
        self.outputs.pop(key, None)

    def prune(self, kind: str, namespace: str | None, listed: Iterable[Body], list_rv: int) -> set[Key]:
        """Drop what a fresh LIST of `kind` no longer shows; return the keys of the TaskJobs concerned.

        kopf lists again when a watch expires (410 Gone) but sends no DELETED for what vanished in
        between, so a Job deleted then would stay Running here forever. Only objects last seen at or
        before the LIST's resourceVersion are dropped: a newer one was created after the LIST.
        """
        shown = {(b["metadata"].get("namespace"), b["metadata"]["name"]) for b in listed}

        def gone(ns: str, name: str, rv: int) -> bool:
            return (namespace is None or ns == namespace) and (ns, name) not in shown and rv <= list_rv

        touched: set[Key] = set()
        if kind == "taskjobs":
            for key, body in list(self.taskjobs.items()):
                if gone(key[0], key[1], _rv(body)):
                    self.forget(key)
                    touched.add(key)
        elif kind == "jobs":
            for key, jobs in list(self.jobs.items()):
                for name, packed in list(jobs.items()):
                    if gone(key[0], name, _rv(body := _unpack(packed))):
                        self.on_job("DELETED", body)
                        touched.add(key)
            for key, ended in list(self.finals.items()):
                for name, record in list(ended.items()):
                    if gone(key[0], name, record.rv):
                        self._drop_final(key, name)
                        touched.add(key)
        elif kind == "pods":
            for (ns, _job), bucket in list(self.pods.items()):
                for name, packed in list(bucket.items()):
                    body = _unpack(packed)
                    if gone(ns, name, _rv(body)) and (owner := self.on_pod("DELETED", body).key) is not None:
                        touched.add(owner)
        return touched

    def _drop_final(self, key: Key, name: str) -> None:
        """Forget an ended Job that is gone (its DELETED event was missed)."""
        del self.finals[key][name]
        self.pods.pop((key[0], name), None)
        self.finished_seen.pop((key[0], name), None)
        self._refresh(key, name)

    # ---- reads for a reconcile

    def status_of(self, key: Key) -> dict[str, Any] | None:
        """Return the freshest status: ours if the watch has not caught up with our last write.

        While the status is the one this operator wrote, the very same object is returned: the
        reconciler's plan memory is tied to it.
        """
        body = self.taskjobs.get(key)
        written = self.written.get(key)
        if written is not None:
            rv = _rv(body) if body is not None else 0
            if body is None or rv < written.resource_version or rv == written.checked:
                return written.status
            # The watch caught up: the object holds our status unless the patch met a status someone
            # else had written (a merge patch applies to what the server has), or was overwritten since.
            if (body.get("status") or {}) == written.status:
                written.checked = rv
                return written.status
            del self.written[key]
        if body is None:
            return None
        status = body.get("status")
        return status if isinstance(status, dict) else {}

    def echoes_own_write(self, key: Key) -> bool:
        """Return whether the TaskJob as last watched is exactly the result of our last status write."""
        written = self.written.get(key)
        body = self.taskjobs.get(key)
        return (
            written is not None
            and body is not None
            and _rv(body) == written.resource_version
            and self.status_of(key) is written.status
        )

    def remember_write(self, key: Key, resource_version: int, status: dict[str, Any]) -> None:
        """Record a status write, so reconciles read it until someone else writes the status."""
        self.written[key] = Written(resource_version, status)

    def expect(self, key: Key, fact: AttemptFact) -> None:
        """Remember a Job this operator created (or found existing) until the watch shows it."""
        if fact.job_name not in self.jobs.get(key, {}) and fact.job_name not in self.finals.get(key, {}):
            self.expected[key][fact.job_name] = fact
            self._touch(key, fact.job_name)

    def token(self, key: Key) -> Token:
        """Return the current point of the change log (for changed_since)."""
        return (self._epoch, self._seq)

    def changed_since(self, key: Key, token: Token) -> list[str] | None:
        """Return the Jobs of the TaskJob that changed after `token`, or None if that cannot be told."""
        epoch, seq = token
        if epoch != self._epoch:
            return None
        changed: list[str] = []
        for job, at in reversed((self._log.get(key) or OrderedDict()).items()):
            if at <= seq:
                break
            changed.append(job)
        return changed

    def facts(self, key: Key) -> list[AttemptFact]:
        """Return what is known of every attempt of the TaskJob's tasks."""
        return list(self.fact_map(key).values())

    def fact_map(self, key: Key) -> dict[str, AttemptFact]:
        """Return what is known of every attempt of the TaskJob's tasks, by Job name (a new dict).

        Jobs are found by the TaskJob's name label, so a Job left by an earlier TaskJob of the same name
        (deleted, its Jobs still being garbage-collected) carries it too: only Jobs owned by this
        TaskJob's uid count, and only pods owned by the Job's uid (the old Job may have had the same name).
        The map is kept up to date by each Job and pod event (see _refresh), so a read only copies it.
        """
        uid = _uid(self.taskjobs.get(key))
        cached = self._maps.get(key)
        if cached is None or cached.uid != uid:
            built = {}
            for name in [*self.jobs.get(key, {}), *self.finals.get(key, {})]:
                fact = self._fact_of(key, name, uid)
                if fact is not None:
                    self._settle(key, name, fact)
                    built[name] = fact
            cached = self._maps[key] = FactMap(uid, built)
        facts = cached.facts
        result = dict(facts)
        for name, fact in (self.expected.get(key) or {}).items():
            result.setdefault(name, fact)
        return result

    def _fact_of(self, key: Key, name: str, uid: str | None) -> AttemptFact | None:
        ended = self.finals.get(key, {}).get(name)
        if ended is not None:
            return ended.fact if uid is None or not ended.owners or uid in ended.owners else None
        packed = self.jobs.get(key, {}).get(name)
        if packed is None:
            return None
        job = _unpack(packed)
        if not _owned_by(job, uid):
            return None
        job_uid = _uid(job)
        pods = [b for p in self.pods.get((key[0], name), {}).values() if _owned_by(b := _unpack(p), job_uid)]
        return attempt_fact(job, pods, self.finished_seen.get((key[0], name)))

    def recorded_outputs(self, key: Key) -> Mapping[str, str]:
        """Return the outputs the TaskJob's ConfigMap holds (or was just written to hold), by task."""
        return self.outputs.get(key, {})

    def record_outputs(self, key: Key, new: Mapping[str, str]) -> None:
        """Note outputs just written to the TaskJob's ConfigMap, before the watch shows them."""
        self.outputs.setdefault(key, {}).update(new)

    def finished_at(self, namespace: str, job: str) -> datetime | None:
        """Return when the watch first showed the Job finished (None: not seen live, e.g. before a restart)."""
        return self.finished_seen.get((namespace, job))

    def outputs_of(self, key: Key, facts: list[AttemptFact]) -> dict[str, str]:
        """Return task outputs: recorded ones, plus any a succeeded pod shows that are not recorded yet."""
        outputs = dict(self.outputs.get(key, {}))
        for fact in facts:
            if fact.phase == "Succeeded" and fact.output is not None:
                outputs.setdefault(fact.task, fact.output)
        return outputs

    def known(self) -> Iterator[Key]:
        """Return the keys of every known TaskJob."""
        return iter(list(self.taskjobs))


def expected_fact(task: str, attempt: int, job_name: str, now: datetime) -> AttemptFact:
    """Return the fact for a Job just created and not yet observed."""
    return AttemptFact(task=task, attempt=attempt, job_name=job_name, phase="Pending", created=now)
