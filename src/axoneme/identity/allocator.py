"""Cluster-wide identity allocation through the store, node-local CIDR identities, and GC.

Store layout (all objects are of kind ``CiliumIdentity``, cluster-scoped; the
store knows only that kind and ``CiliumEndpoint`` for identities):

* **Identity object** — ``metadata.name`` = the numeric ID (``"256"``),
  ``security-labels`` = ``{"k8s:app": "web", ...}`` as in Cilium's CRD, and
  ``metadata.creationTimestamp``. Creating it with ``create()`` claims the
  number: the store refuses a second object with that name.
* **Labels key** (index) — ``metadata.name`` = ``labels-<sha256 of the sorted
  label set>``, ``spec.identity`` = the ID, ``spec.labels`` = the labels, and
  ``status.references`` = ``{node: time}`` for every node that uses the
  identity, ``status.lastUsed`` (last reference change) and
  ``status.deleting``. Creating it with ``create()`` claims the label set, so
  looking an identity up by labels is one ``get``. It lives in the same kind
  because the store's kind list is fixed (``IdentityCache`` and ``list()``
  skip it; its name can never be a number).

Allocating labels L on node N (``IdentityAllocator.allocate``):

1. Get the labels key of L. If it exists, add N to its references with a
   compare-and-swap ``put`` (retry on conflict) and use its ID. If it is
   marked ``deleting`` (GC is removing it), wait and start again.
2. Otherwise pick a random free number (from a listing) and ``create()`` the
   identity object; on ConflictError try another number; if none is free,
   IdentityExhaustedError ("no more available IDs in configured space
   256..65535").
3. ``create()`` the labels key pointing at that number, with N referenced.
   If another node won the race (ConflictError), delete the identity object
   just created (nothing points at it) and go to 1: the winner's ID is used.

So one label set has one ID cluster-wide, and two label sets never share one
(each number is created once). Each node counts its own users locally and
writes to the store only for its first user and after its last.

GC (``collect_garbage``, run by one process at a time, like Cilium's
operator) deletes an identity whose labels key has no reference from a live
node and whose ``lastUsed`` is older than the grace period: it first marks
the key ``deleting`` with a compare-and-swap, so an allocator that added a
reference meanwhile makes GC skip it, and an allocator that comes after sees
the mark and waits; then it deletes the identity object and the key. It also
removes identity objects that no labels key points at (an allocator that
crashed between steps 2 and 3) once they are older than the grace period.
This assumes one allocation step never takes longer than the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from axoneme.identity.reserved import (
    LOCAL_IDENTITY_FLAG,
    MAX_CLUSTER_IDENTITY,
    MIN_CLUSTER_IDENTITY,
    RESERVED,
    WORLD,
    NumericIdentity,
    is_local,
    reserved_labels,
)
from axoneme.labels.derive import cidr_labels, normalize_prefix
from axoneme.labels.model import SOURCE_CIDR, SOURCE_RESERVED, Label, LabelSet
from axoneme.store.types import (
    ConflictError,
    Key,
    Listing,
    Resource,
    Store,
    StoreError,
    WatchEvent,
)

IDENTITY_KIND = "CiliumIdentity"
IDENTITY_API_VERSION = "cilium.io/v2"
INDEX_API_VERSION = "axoneme.io/v1"
INDEX_PREFIX = "labels-"
SECURITY_LABELS = "security-labels"
DEFAULT_GC_GRACE = 15 * 60.0  # seconds, Cilium's identity GC interval
# A node waits this long in total for GC to finish deleting an identity it wants.
DELETING_WAIT = 10.0
MAX_LOCAL_INDEX = (1 << 24) - 1

Clock = Callable[[], float]


class IdentityExhaustedError(StoreError):
    """Every number in the configured range is taken."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(f"no more available IDs in configured space {low}..{high}")
        self.low, self.high = low, high


class IdentityAllocationError(StoreError):
    """The store kept changing under the allocator, or holds inconsistent objects."""


# --- object shapes --------------------------------------------------------------


def labels_to_map(labels: Iterable[Label]) -> dict[str, str]:
    """``{"k8s:app": "web", "reserved:host": ""}``: Cilium's ``security-labels``."""
    return {f"{lb.source}:{lb.key}": lb.value for lb in sorted(labels)}


def labels_from_map(mapping: dict[str, Any]) -> LabelSet:
    out: set[Label] = set()
    for full_key, value in mapping.items():
        source, sep, key = str(full_key).partition(":")
        if not sep or not source or not key:
            raise ValueError(f"security label {full_key!r} is not source:key")
        out.add(Label(source, key, str(value)))
    return frozenset(out)


def labels_key(labels: LabelSet) -> str:
    """A stable digest of the label set (sorted, JSON-encoded)."""
    canonical = json.dumps([[lb.source, lb.key, lb.value] for lb in sorted(labels)])
    return hashlib.sha256(canonical.encode()).hexdigest()


def index_name(labels: LabelSet) -> str:
    return INDEX_PREFIX + labels_key(labels)


def _ts(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(text: Any) -> float:
    """Parse a timestamp written by ``_ts``; anything else counts as long ago."""
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def identity_object(identity: int, labels: LabelSet, now: float) -> Resource:
    return {
        "apiVersion": IDENTITY_API_VERSION,
        "kind": IDENTITY_KIND,
        "metadata": {"name": str(identity), "creationTimestamp": _ts(now)},
        SECURITY_LABELS: labels_to_map(labels),
    }


def index_object(labels: LabelSet, identity: int, node: str, now: float) -> Resource:
    return {
        "apiVersion": INDEX_API_VERSION,
        "kind": IDENTITY_KIND,
        "metadata": {"name": index_name(labels), "creationTimestamp": _ts(now)},
        "spec": {"identity": str(identity), "labels": labels_to_map(labels)},
        "status": {"references": {node: _ts(now)}, "lastUsed": _ts(now), "deleting": False},
    }


def is_index(obj: Resource) -> bool:
    return str(obj.get("metadata", {}).get("name", "")).startswith(INDEX_PREFIX)


def parse_identity(obj: Resource) -> tuple[NumericIdentity, LabelSet] | None:
    """(ID, labels) of an identity object; None for labels keys and malformed objects."""
    name = str(obj.get("metadata", {}).get("name", ""))
    if not name.isdigit() or not isinstance(obj.get(SECURITY_LABELS), dict):
        return None
    try:
        return NumericIdentity(int(name)), labels_from_map(obj[SECURITY_LABELS])
    except ValueError:
        return None


@dataclass(frozen=True)
class IndexEntry:
    """A parsed labels key."""

    identity: NumericIdentity
    labels: LabelSet
    references: dict[str, str]
    last_used: float
    deleting: bool
    revision: int


def parse_index(obj: Resource) -> IndexEntry:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    return IndexEntry(
        identity=NumericIdentity(int(spec["identity"])),
        labels=labels_from_map(spec["labels"]),
        references=dict(status.get("references", {})),
        last_used=_seconds(status.get("lastUsed")),
        deleting=bool(status.get("deleting", False)),
        revision=int(obj["metadata"].get("resourceVersion", 0)),
    )


def _with_status(obj: Resource, **changes: Any) -> Resource:
    new: Resource = json.loads(json.dumps(obj))
    new.setdefault("status", {}).update(changes)
    return new


def _identity_key(identity: int) -> Key:
    return Key(IDENTITY_KIND, "", str(identity))


def _index_key(labels: LabelSet) -> Key:
    return Key(IDENTITY_KIND, "", index_name(labels))


# --- reserved ---------------------------------------------------------------------


def reserved_identities() -> dict[int, LabelSet]:
    return {int(num): reserved_labels(name) for name, num in RESERVED.items()}


def reserved_identity_for(labels: LabelSet) -> NumericIdentity | None:
    """The reserved ID whose label set is exactly ``labels``, if any."""
    if len(labels) == 1:
        (only,) = labels
        if only.source == SOURCE_RESERVED and not only.value:
            return RESERVED.get(only.key)
    return None


# --- the cluster allocator -----------------------------------------------------


@dataclass
class _LocalRef:
    identity: NumericIdentity
    count: int


class IdentityAllocator:
    """Allocates cluster-wide identities for ``node`` through ``store``.

    ``allocate`` and ``release`` are reference-counted per node: the store is
    touched on a label set's first allocation and last release on this node.
    Safe to call concurrently from many tasks.
    """

    def __init__(
        self,
        store: Store,
        node: str,
        *,
        min_id: int = MIN_CLUSTER_IDENTITY,
        max_id: int = MAX_CLUSTER_IDENTITY,
        clock: Clock = time.time,
        rng: random.Random | None = None,
        max_attempts: int = 1000,
    ) -> None:
        if not node:
            raise ValueError("node name is required")
        if not MIN_CLUSTER_IDENTITY <= min_id <= max_id <= MAX_CLUSTER_IDENTITY:
            raise ValueError(
                f"identity range {min_id}..{max_id} is outside "
                f"{MIN_CLUSTER_IDENTITY}..{MAX_CLUSTER_IDENTITY}"
            )
        self._store = store
        self.node = node
        self.min_id, self.max_id = min_id, max_id
        self._clock = clock
        self._rng = rng or random.Random()
        self._max_attempts = max_attempts
        self._refs: dict[LabelSet, _LocalRef] = {}
        self._locks: dict[LabelSet, asyncio.Lock] = {}
        self._lock_users: dict[LabelSet, int] = {}

    @contextlib.asynccontextmanager
    async def _serialized(self, labels: LabelSet) -> AsyncIterator[None]:
        """One task at a time per label set on this node; the lock is dropped
        once no task holds or waits for it."""
        lock = self._locks.get(labels)
        if lock is None:
            lock = self._locks[labels] = asyncio.Lock()
        self._lock_users[labels] = self._lock_users.get(labels, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[labels] -= 1
            if self._lock_users[labels] == 0:
                del self._lock_users[labels]
                del self._locks[labels]

    async def allocate(self, labels: LabelSet) -> NumericIdentity:
        labels = frozenset(labels)
        found = reserved_identity_for(labels)
        if found is not None:
            return found
        if not labels:
            raise ValueError("cannot allocate an identity for an empty label set")
        if any(lb.source == SOURCE_CIDR for lb in labels):
            raise ValueError("CIDR identities are node-local: use LocalIdentityAllocator")
        async with self._serialized(labels):
            ref = self._refs.get(labels)
            if ref is not None:
                ref.count += 1
                return ref.identity
            identity = await self._acquire(labels)
            self._refs[labels] = _LocalRef(identity, 1)
            return identity

    async def release(self, labels: LabelSet) -> bool:
        """Drop one local reference; True when it was the node's last one for ``labels``."""
        labels = frozenset(labels)
        async with self._serialized(labels):
            ref = self._refs.get(labels)
            if ref is None:
                return False
            if ref.count > 1:
                ref.count -= 1
                return False
            await self._unreference(labels, ref.identity)
            del self._refs[labels]
            return True

    def refcounts(self) -> dict[int, int]:
        """Local references per identity (``identity list --endpoints``)."""
        return {int(r.identity): r.count for r in self._refs.values()}

    async def lookup(self, identity: int) -> LabelSet | None:
        reserved = reserved_identities()
        if identity in reserved:
            return reserved[identity]
        if is_local(identity) or not MIN_CLUSTER_IDENTITY <= identity <= MAX_CLUSTER_IDENTITY:
            return None
        obj = await self._store.get(_identity_key(identity))
        parsed = parse_identity(obj) if obj is not None else None
        return parsed[1] if parsed else None

    async def list(self) -> dict[int, LabelSet]:
        """Every identity: the reserved ones and those in the store."""
        out = reserved_identities()
        for obj in (await self._store.list(IDENTITY_KIND)).items:
            parsed = parse_identity(obj)
            if parsed is not None:
                out[int(parsed[0])] = parsed[1]
        return dict(sorted(out.items()))

    async def prune_stale_references(self) -> int:
        """Remove this node's store references to identities it no longer uses locally
        (e.g. after an agent restart, once endpoints are restored). Returns how many."""
        pruned = 0
        for obj in (await self._store.list(IDENTITY_KIND)).items:
            if not is_index(obj):
                continue
            entry = parse_index(obj)
            if self.node in entry.references and entry.labels not in self._refs:
                async with self._serialized(entry.labels):
                    if entry.labels not in self._refs:
                        await self._unreference(entry.labels, entry.identity)
                        pruned += 1
        return pruned

    # --- store protocol ---

    async def _acquire(self, labels: LabelSet) -> NumericIdentity:
        waited = 0.0
        for _ in range(self._max_attempts):
            obj = await self._store.get(_index_key(labels))
            if obj is None:
                identity = await self._claim_number(labels)
                try:
                    await self._store.create(
                        index_object(labels, identity, self.node, self._clock())
                    )
                except ConflictError:
                    # Another node claimed these labels first; free our number.
                    await self._store.delete(_identity_key(identity))
                    continue
                return identity
            entry = parse_index(obj)
            if entry.labels != labels:
                raise IdentityAllocationError(
                    f"labels key {index_name(labels)} holds other labels (digest collision?)"
                )
            if entry.deleting:
                if waited >= DELETING_WAIT:
                    break
                await asyncio.sleep(0.05)
                waited += 0.05
                continue
            if self.node in entry.references:
                return entry.identity
            now = _ts(self._clock())
            refs = {**entry.references, self.node: now}
            try:
                await self._store.put(
                    _with_status(obj, references=refs, lastUsed=now),
                    expect_revision=entry.revision,
                )
            except ConflictError:
                await asyncio.sleep(0)
                continue
            return entry.identity
        raise IdentityAllocationError(
            f"could not allocate an identity for {sorted(map(str, labels))}: "
            "the store kept changing or GC did not finish deleting it"
        )

    async def _claim_number(self, labels: LabelSet) -> NumericIdentity:
        """Create an identity object on a free number (random, as Cilium's CRD mode)."""
        while True:
            used: set[int] = set()
            for obj in (await self._store.list(IDENTITY_KIND)).items:
                name = str(obj.get("metadata", {}).get("name", ""))
                if name.isdigit():
                    used.add(int(name))
            free = [n for n in range(self.min_id, self.max_id + 1) if n not in used]
            if not free:
                raise IdentityExhaustedError(self.min_id, self.max_id)
            self._rng.shuffle(free)
            for number in free:
                try:
                    await self._store.create(identity_object(number, labels, self._clock()))
                except ConflictError:
                    continue
                return NumericIdentity(number)
            # Every number we thought free was taken meanwhile: list again.

    async def _unreference(self, labels: LabelSet, identity: NumericIdentity) -> None:
        for _ in range(self._max_attempts):
            obj = await self._store.get(_index_key(labels))
            if obj is None:
                return
            entry = parse_index(obj)
            if entry.identity != identity or entry.deleting or self.node not in entry.references:
                return
            refs = {n: t for n, t in entry.references.items() if n != self.node}
            try:
                await self._store.put(
                    _with_status(obj, references=refs, lastUsed=_ts(self._clock())),
                    expect_revision=entry.revision,
                )
                return
            except ConflictError:
                await asyncio.sleep(0)
        raise IdentityAllocationError(f"could not release identity {identity}: store kept changing")


# --- watch-driven cache ---------------------------------------------------------


@dataclass(frozen=True)
class IdentityChange:
    type: Literal["upsert", "delete"]
    identity: NumericIdentity
    labels: LabelSet


class IdentityCache:
    """Every identity a node knows, kept current from a list + watch of
    ``CiliumIdentity`` (pure state: no I/O). Reserved identities are always in it."""

    def __init__(self) -> None:
        self._by_id: dict[int, LabelSet] = reserved_identities()
        self._by_labels: dict[LabelSet, set[int]] = {}
        for num, labels in self._by_id.items():
            self._by_labels.setdefault(labels, set()).add(num)
        self.revision = 0

    def upsert(self, identity: int, labels: LabelSet) -> IdentityChange | None:
        if self._by_id.get(identity) == labels:
            return None
        self.remove(identity)
        self._by_id[identity] = labels
        self._by_labels.setdefault(labels, set()).add(identity)
        return IdentityChange("upsert", NumericIdentity(identity), labels)

    def remove(self, identity: int) -> IdentityChange | None:
        if identity in RESERVED.values():
            return None
        labels = self._by_id.pop(identity, None)
        if labels is None:
            return None
        ids = self._by_labels[labels]
        ids.discard(identity)
        if not ids:
            del self._by_labels[labels]
        return IdentityChange("delete", NumericIdentity(identity), labels)

    def reset(self, listing: Listing) -> list[IdentityChange]:
        """Replace the state with a listing; the changes that implies."""
        seen: dict[int, LabelSet] = {}
        for obj in listing.items:
            parsed = parse_identity(obj)
            if parsed is not None:
                seen[int(parsed[0])] = parsed[1]
        changes = [
            c for num in sorted(set(self._by_id) - set(seen)) if (c := self.remove(num)) is not None
        ]
        changes += [c for num, lbls in sorted(seen.items()) if (c := self.upsert(num, lbls))]
        self.revision = listing.revision
        return changes

    def apply(self, event: WatchEvent) -> IdentityChange | None:
        self.revision = max(self.revision, event.revision)
        parsed = parse_identity(event.object)
        if parsed is None:
            return None
        identity, labels = parsed
        if event.type == "DELETED":
            return self.remove(identity)
        return self.upsert(identity, labels)

    def get(self, identity: int) -> LabelSet | None:
        return self._by_id.get(identity)

    def find(self, labels: LabelSet) -> NumericIdentity | None:
        """The (lowest) ID with exactly these labels."""
        ids = self._by_labels.get(frozenset(labels))
        return NumericIdentity(min(ids)) if ids else None

    def all(self) -> dict[int, LabelSet]:
        return dict(sorted(self._by_id.items()))

    def __contains__(self, identity: object) -> bool:
        return identity in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)


# --- node-local CIDR identities -------------------------------------------------


class LocalIdentityAllocator:
    """CIDR identities: node-local numbers ``LOCAL_IDENTITY_FLAG | n``, never stored,
    reference-counted per prefix. A ``/0`` is the world identity."""

    def __init__(self, *, max_index: int = MAX_LOCAL_INDEX, dual_stack: bool = False) -> None:
        if not 1 <= max_index <= MAX_LOCAL_INDEX:
            raise ValueError(f"max_index must be in 1..{MAX_LOCAL_INDEX}")
        self._max_index = max_index
        self._dual_stack = dual_stack
        self._by_prefix: dict[str, _LocalRef] = {}
        self._labels: dict[int, LabelSet] = {}
        self._next = 1

    def allocate(self, prefix: str) -> NumericIdentity:
        prefix = normalize_prefix(prefix)
        if prefix.endswith("/0"):
            return WORLD
        ref = self._by_prefix.get(prefix)
        if ref is not None:
            ref.count += 1
            return ref.identity
        identity = self._free_number()
        self._by_prefix[prefix] = _LocalRef(identity, 1)
        self._labels[identity] = cidr_labels(prefix, dual_stack=self._dual_stack)
        return identity

    def _free_number(self) -> NumericIdentity:
        # Round-robin from the last number handed out, so a released number is
        # not reused at once (peers may still hold it briefly).
        for step in range(self._max_index):
            n = (self._next - 1 + step) % self._max_index + 1
            identity = LOCAL_IDENTITY_FLAG | n
            if identity not in self._labels:
                self._next = n % self._max_index + 1
                return NumericIdentity(identity)
        raise IdentityExhaustedError(LOCAL_IDENTITY_FLAG | 1, LOCAL_IDENTITY_FLAG | self._max_index)

    def release(self, prefix: str) -> bool:
        """Drop one reference; True when the prefix's identity was freed."""
        prefix = normalize_prefix(prefix)
        ref = self._by_prefix.get(prefix)
        if ref is None:
            return False
        ref.count -= 1
        if ref.count > 0:
            return False
        del self._by_prefix[prefix]
        del self._labels[ref.identity]
        return True

    def identity_of(self, prefix: str) -> NumericIdentity | None:
        prefix = normalize_prefix(prefix)
        if prefix.endswith("/0"):
            return WORLD
        ref = self._by_prefix.get(prefix)
        return ref.identity if ref else None

    def lookup(self, identity: int) -> LabelSet | None:
        return self._labels.get(identity)

    def prefixes(self) -> dict[str, NumericIdentity]:
        """Prefix → identity, for the ipcache."""
        return {p: r.identity for p, r in sorted(self._by_prefix.items())}

    def identities(self) -> dict[int, LabelSet]:
        return dict(sorted(self._labels.items()))


# --- garbage collection -----------------------------------------------------------


async def collect_garbage(
    store: Store,
    live_nodes: Collection[str],
    *,
    clock: Clock = time.time,
    grace: float = DEFAULT_GC_GRACE,
) -> list[NumericIdentity]:
    """Delete identities no live node references, unused for ``grace`` seconds.

    Returns the deleted IDs, sorted. Run by one process at a time.
    """
    live = set(live_nodes)
    items = (await store.list(IDENTITY_KIND)).items
    now = clock()
    objects: dict[int, tuple[LabelSet, float]] = {}
    indexes: list[Resource] = []
    for obj in items:
        if is_index(obj):
            indexes.append(obj)
            continue
        parsed = parse_identity(obj)
        if parsed is not None:
            created = _seconds(obj["metadata"].get("creationTimestamp"))
            objects[int(parsed[0])] = (parsed[1], created)

    removed: set[int] = set()
    pointed: set[int] = set()
    for obj in indexes:
        try:
            entry = parse_index(obj)
        except (KeyError, ValueError, TypeError):
            continue  # not ours to judge
        in_use = any(node in live for node in entry.references)
        if not entry.deleting and (in_use or now - entry.last_used < grace):
            if objects.get(entry.identity, (None, 0.0))[0] == entry.labels:
                pointed.add(entry.identity)
            continue
        if not entry.deleting:
            try:
                obj = await store.put(
                    _with_status(obj, deleting=True), expect_revision=entry.revision
                )
            except ConflictError:
                # Someone referenced (or released) it meanwhile: judge it next time.
                pointed.add(entry.identity)
                continue
        if objects.get(entry.identity, (None, 0.0))[0] == entry.labels:
            await store.delete(_identity_key(entry.identity))
            removed.add(entry.identity)
        await store.delete(Key.of(obj))

    # Identity objects no labels key points at: an allocator died between
    # claiming the number and claiming the labels.
    for identity, (_, created) in objects.items():
        if identity in pointed or identity in removed or now - created < grace:
            continue
        await store.delete(_identity_key(identity))
        removed.add(identity)
    return [NumericIdentity(n) for n in sorted(removed)]
