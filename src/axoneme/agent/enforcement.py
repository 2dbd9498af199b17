"""Identity, ipcache and policy for one node's endpoints, pushed into the datapath.

The agent's control loop: one consistent snapshot of the cluster from the
store, then one ordered stream of every change (``run_cluster_informer``).
Each change updates plain state here; a regeneration then computes, as pure
functions, the desired identities of local endpoints, the ipcache, and every
local endpoint's policy, and hands the result to the datapath port, which
writes only the differences. ``realized_revision`` is the store revision
whose state the kernel now enforces: ``axoneme policy wait`` polls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from axoneme.datapath.types import DatapathPort, IPCacheEntry, LxcEntry
from axoneme.endpoint.manager import EndpointManager
from axoneme.endpoint.model import Endpoint
from axoneme.identity.allocator import IdentityAllocator, IdentityCache, LocalIdentityAllocator
from axoneme.identity.endpoints import (
    EndpointRecord,
    endpoint_key,
    endpoint_object,
    parse_endpoint,
)
from axoneme.identity.reserved import HOST, INIT
from axoneme.ipcache import model as ipcache_model
from axoneme.k8s.clusternode import ClusterNode, parse_cluster_node
from axoneme.k8s.errors import ValidationError
from axoneme.k8s.objects import Namespace, Node, Pod, parse_namespace, parse_node, parse_pod
from axoneme.k8s.service import EndpointSlice, Service, parse_endpointslice, parse_service
from axoneme.labels.derive import endpoint_labels, reserved
from axoneme.labels.model import LabelSet
from axoneme.policy import intervals, mapstate
from axoneme.policy.affected import affected_policies, stale_endpoints
from axoneme.policy.parse import parse_policy
from axoneme.policy.resolve import resolve
from axoneme.policy.selector import Selectable, SelectorCache
from axoneme.policy.services import ServiceView, expand
from axoneme.policy.types import (
    EndpointPolicy,
    EndpointRef,
    EnforcementMode,
    Policy,
    PolicyContext,
    PortVerdicts,
)
from axoneme.store.types import Listing, Resource, Store, StoreError, WatchEvent

log = logging.getLogger(__name__)

POLICY_KINDS = ("NetworkPolicy", "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy")
NamedPorts = dict[str, frozenset[tuple[str, int]]]
PeerPorts = Mapping[str, frozenset[tuple[str, int]]]  # a peer identity's named ports
K = TypeVar("K")


class EnforcementError(Exception):
    """Identity or policy could not be set up for an endpoint (the store is down)."""


@dataclass(frozen=True)
class RegenerationStats:
    endpoints: int
    policy_changes: int
    ipcache_changes: int
    revision: int
    seconds: float = 0.0
    resolved: int = 0  # endpoints whose policy was computed again (the rest were unaffected)


def named_ports_of(pod: Pod) -> NamedPorts:
    ports: dict[str, set[tuple[str, int]]] = {}
    for port in pod.ports:
        if port.name:
            ports.setdefault(port.name, set()).add((port.protocol, port.container_port))
    return {name: frozenset(v) for name, v in ports.items()}


def named_ports_by_identity(
    endpoints: Mapping[K, EndpointRecord], pods: Mapping[K, Pod]
) -> dict[int, NamedPorts]:
    """identity → port name → {(protocol, port)}, over the pods behind each identity."""
    named: dict[int, dict[str, set[tuple[str, int]]]] = {}
    for key, record in endpoints.items():
        pod = pods.get(key)
        if pod is None:
            continue
        for name, ports in named_ports_of(pod).items():
            named.setdefault(int(record.identity), {}).setdefault(name, set()).update(ports)
    return {i: {n: frozenset(p) for n, p in m.items()} for i, m in named.items()}


def router_ip(node: Node) -> str | None:
    if not node.pod_cidrs:
        return None
    return str(ipaddress.ip_network(node.pod_cidrs[0]).network_address + 1)


def node_addresses(
    nodes: Iterable[Node],
    entries: Mapping[str, ClusterNode],
    self_node: str,
    own_router_ip: str | None,
) -> list[ipcache_model.NodeAddresses]:
    """The ipcache's view of every Node, with the health endpoint its live entry names.

    A health address comes only from the entry of a node that is also a Node:
    an agent's entry alone does not make it part of the cluster."""
    out = []
    for node in nodes:
        entry = entries.get(node.name)
        health = entry.health_ipv4 if entry is not None else ""
        out.append(
            ipcache_model.NodeAddresses(
                node.name, node.internal_ip, router_ip(node), health or None
            )
        )
    if not any(node.name == self_node for node in out):
        out.append(ipcache_model.NodeAddresses(self_node, "", own_router_ip))
    return out


WHOLE_LINE = ((0, 0xFFFFFF),)


def allow_from_host(policy: EndpointPolicy) -> EndpointPolicy:
    """Cilium's ``allow-localhost=auto``: the local node always reaches its endpoints
    (kubelet probes), unless a deny rule says otherwise for the host itself."""
    ingress = policy.ingress
    if not ingress.enforced:
        return policy
    current = ingress.by_identity.get(int(HOST), PortVerdicts())
    denied = intervals.union(current.deny, ingress.by_identity.get(0, PortVerdicts()).deny)
    host = PortVerdicts(allow=intervals.subtract(WHOLE_LINE, denied), deny=current.deny)
    by_identity = {**ingress.by_identity, int(HOST): host}
    return replace(policy, ingress=replace(ingress, by_identity=by_identity))


def cidr_prefixes(policies: Iterable[Policy]) -> set[str]:
    """Prefixes CiliumNetworkPolicy CIDR peers select by identity (Cilium semantics)."""
    prefixes: set[str] = set()
    for policy in policies:
        for rule in policy.rules:
            for peer in rule.peers.cidrs:
                if not peer.match_pods:
                    prefixes.add(peer.cidr)
                    prefixes.update(peer.excepts)
    return prefixes


class Enforcement:
    def __init__(
        self,
        node: str,
        store: Store,
        manager: EndpointManager,
        datapath: DatapathPort,
        *,
        mode: EnforcementMode = "default",
        audit: bool = False,
        allow_localhost: bool = True,
    ) -> None:
        self.allow_localhost = allow_localhost
        self.node = node
        self._store = store
        self._manager = manager
        self._datapath = datapath
        self.mode: EnforcementMode = mode
        self.audit = audit
        self.allocator = IdentityAllocator(store, node)
        self.identities = IdentityCache()
        self.cidr = LocalIdentityAllocator()
        self.selectors = SelectorCache(self.identities.all())
        self.pods: dict[tuple[str, str], Pod] = {}
        self.namespaces: dict[str, Namespace] = {}
        self.ceps: dict[tuple[str, str], EndpointRecord] = {}
        self.nodes: dict[str, Node] = {}
        # Live agents' node entries: each names its node's health endpoint.
        self.cluster_nodes: dict[str, ClusterNode] = {}
        self.policies: dict[tuple[str, str, str], tuple[Policy, ...]] = {}
        # Services and their slices: toServices peers expand to their backends.
        self.services: dict[tuple[str, str], Service] = {}
        self.slices: dict[tuple[str, str], EndpointSlice] = {}
        self.policy_errors: dict[tuple[str, str, str], str] = {}
        self.endpoint_policies: dict[int, EndpointPolicy] = {}
        self.seen_revision = 0
        self.realized_revision = 0
        self.regenerations = 0
        # Told of every completed regeneration (agent metrics); must not raise or block.
        self.regeneration_observers: list[Callable[[RegenerationStats], None]] = []
        self.synced = asyncio.Event()
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._ep_labels: dict[int, LabelSet] = {}  # endpoint id → its identity's labels
        # Incremental regeneration (policy/affected.py): what the last pass resolved
        # from, and the selectables whose identity sets changed since.
        self._resolved_refs: dict[int, EndpointRef] = {}
        self._resolved_policies: dict[tuple[str, str, str], tuple[Policy, ...]] = {}
        self._resolved_named: dict[int, PeerPorts] = {}
        self._resolved_settings: tuple[object, ...] | None = None  # None: resolve everything
        self._changed_selectables: set[Selectable] = set()

    # ---- the cluster view, fed by the informer ----------------------------

    async def on_sync(self, listing: Listing) -> None:
        by_kind: dict[str, list[Resource]] = {}
        for obj in listing.items:
            by_kind.setdefault(str(obj.get("kind")), []).append(obj)
        self.pods, self.namespaces, self.ceps, self.nodes = {}, {}, {}, {}
        self.cluster_nodes = {}
        self.policies, self.policy_errors = {}, {}
        self.services, self.slices = {}, {}
        for obj in listing.items:
            self._apply_object(obj, deleted=False)
        for change in self.identities.reset(
            Listing(by_kind.get("CiliumIdentity", []), listing.revision)
        ):
            self._identity_changed(change.type, int(change.identity), change.labels)
        self.seen_revision = listing.revision
        self._resolved_settings = None  # a resync: the next pass resolves everything
        self.synced.set()
        self._dirty.set()

    async def on_event(self, event: WatchEvent) -> None:
        if event.object.get("kind") == "CiliumIdentity":
            change = self.identities.apply(event)
            if change is not None:
                self._identity_changed(change.type, int(change.identity), change.labels)
        else:
            self._apply_object(event.object, deleted=event.type == "DELETED")
        self.seen_revision = event.revision
        self._dirty.set()

    def _identity_changed(self, kind: str, identity: int, labels: LabelSet) -> None:
        if kind == "delete":
            changed = self.selectors.remove_identity(identity)
        else:
            changed = self.selectors.add_identity(identity, labels)
        self._changed_selectables |= changed

    def _apply_object(self, obj: Resource, *, deleted: bool) -> None:
        kind = obj.get("kind")
        meta = obj.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        try:
            if kind == "Pod":
                self._put(self.pods, key, None if deleted else parse_pod(obj))
            elif kind == "Namespace":
                self._put(self.namespaces, key[1], None if deleted else parse_namespace(obj))
            elif kind == "Node":
                self._put(self.nodes, key[1], None if deleted else parse_node(obj))
            elif kind == "ClusterNode":
                self._put(self.cluster_nodes, key[1], None if deleted else parse_cluster_node(obj))
            elif kind == "CiliumEndpoint":
                self._put(self.ceps, key, None if deleted else parse_endpoint(obj))
            elif kind == "Service":
                self._put(self.services, key, None if deleted else parse_service(obj))
            elif kind == "EndpointSlice":
                self._put(self.slices, key, None if deleted else parse_endpointslice(obj))
            elif kind in POLICY_KINDS:
                pkey = (str(kind), key[0], key[1])
                self.policy_errors.pop(pkey, None)
                self._put(self.policies, pkey, None if deleted else parse_policy(obj))
        except (ValidationError, ValueError) as exc:
            # Only reachable for objects written around `axoneme apply`: never enforce half.
            log.warning("ignoring invalid %s %s: %s", kind, "/".join(key), exc)
            if kind in POLICY_KINDS:
                self.policy_errors[(str(kind), key[0], key[1])] = str(exc)

    @staticmethod
    def _put(table: dict[Any, Any], key: Any, value: Any) -> None:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value

    # ---- endpoints: called from the CNI path -------------------------------

    def labels_for(self, pod: Pod | None, namespace: Namespace | None) -> LabelSet:
        """The identity labels of a new endpoint; a non-Kubernetes one is ``init``."""
        if pod is None:
            return reserved("init")
        return endpoint_labels(pod, namespace)

    async def allocate(self, labels: LabelSet) -> int:
        try:
            return int(await self.allocator.allocate(labels))
        except StoreError as exc:
            raise EnforcementError(f"cannot allocate an identity: {exc}") from exc

    async def release(self, labels: LabelSet) -> None:
        with contextlib.suppress(StoreError):
            await self.allocator.release(labels)

    async def endpoint_ready(self, ep: Endpoint, labels: LabelSet) -> None:
        """A new endpoint exists: publish it, compute its policy, then attach programs."""
        self._ep_labels[ep.id] = labels
        if ep.namespace and ep.pod:
            record = self._record(ep)
            try:
                await self._store.put(endpoint_object(record))
            except StoreError as exc:
                raise EnforcementError(f"cannot publish the endpoint: {exc}") from exc
            self.ceps[(ep.namespace, ep.pod)] = record
        # Policy and the lxc entry go in before the programs see a packet.
        await self.regenerate()
        await asyncio.to_thread(self._datapath.attach, ep.host_ifindex)

    async def endpoint_removed(self, ep: Endpoint) -> None:
        await asyncio.to_thread(self._datapath.delete_endpoint, ep.host_ifindex)
        if ep.namespace and ep.pod:
            with contextlib.suppress(StoreError):
                await self._store.delete(endpoint_key(ep.namespace, ep.pod))
            self.ceps.pop((ep.namespace, ep.pod), None)
        labels = self._ep_labels.pop(ep.id, None)
        if labels is not None:
            await self.release(labels)
        self.endpoint_policies.pop(ep.id, None)
        self._dirty.set()

    def _node_ip(self) -> str:
        node = self.nodes.get(self.node)
        return node.internal_ip if node else ""

    def _record(self, ep: Endpoint) -> EndpointRecord:
        labels = self._ep_labels.get(ep.id, frozenset())
        return EndpointRecord(
            ep.namespace,
            ep.pod,
            ep.id,
            ep.identity or INIT,  # type: ignore[arg-type]
            labels,
            ep.ipv4,
            self._node_ip(),
        )

    async def restore(self) -> None:
        """After a restart: take back the identity references of restored endpoints."""
        for ep in self._manager.endpoints():
            if ep.identity is None:
                continue
            labels = await self._labels_of_identity(ep.identity)
            if labels is not None:
                self._ep_labels[ep.id] = labels
                with contextlib.suppress(StoreError):
                    await self.allocator.allocate(labels)

    async def _labels_of_identity(self, identity: int) -> LabelSet | None:
        found = self.identities.get(identity)
        if found is not None:
            return found
        with contextlib.suppress(StoreError):
            return await self.allocator.lookup(identity)
        return None

    # ---- regeneration -------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._dirty.wait()
            await self.synced.wait()
            await asyncio.sleep(0.01)  # coalesce a burst of events into one pass
            self._dirty.clear()
            try:
                await self.regenerate()
            except Exception:
                log.exception("regeneration failed; retrying")
                await asyncio.sleep(1)
                self._dirty.set()

    async def _refresh_identities(self) -> None:
        """Give endpoints whose pod or namespace labels changed their new identity."""
        for ep in self._manager.endpoints():
            pod = self.pods.get((ep.namespace, ep.pod))
            if pod is None or ep.identity is None:
                continue
            old = self._ep_labels.get(ep.id)
            if old is None:
                continue  # still inside its CNI ADD, which holds its identity reference
            labels = self.labels_for(pod, self.namespaces.get(ep.namespace))
            if labels == old:
                continue
            identity = await self.allocate(labels)
            updated = self._manager.set_identity(ep.container_id, ep.ifname, identity, pod.labels)
            self._ep_labels[ep.id] = labels
            if updated is not None and ep.namespace:
                with contextlib.suppress(StoreError):
                    await self._store.put(endpoint_object(self._record(updated)))
            await self.release(old)
            log.info("endpoint %d (%s/%s) has identity %d", ep.id, ep.namespace, ep.pod, identity)

    def _sync_cidr_identities(self, policies: list[Policy]) -> None:
        wanted = cidr_prefixes(policies)
        have = set(self.cidr.prefixes())
        for prefix in wanted - have:
            identity = self.cidr.allocate(prefix)
            labels = self.cidr.lookup(identity)
            if labels is not None:
                self._changed_selectables |= self.selectors.add_identity(int(identity), labels)
        for prefix in have - wanted:
            old = self.cidr.identity_of(prefix)
            if self.cidr.release(prefix) and old is not None:
                self._changed_selectables |= self.selectors.remove_identity(int(old))

    def _context(self) -> PolicyContext:
        identities: dict[int, LabelSet] = {**self.identities.all(), **self.cidr.identities()}
        return PolicyContext(
            identities=identities,
            named_ports=named_ports_by_identity(self.ceps, self.pods),
            mode=self.mode,
            audit=self.audit,
        )

    def _desired_ipcache(self) -> dict[str, IPCacheEntry]:
        node_ip = self._node_ip()
        endpoints = [
            ipcache_model.EndpointIP(r.ipv4, int(r.identity), r.node_ip) for r in self.ceps.values()
        ] + [
            ipcache_model.EndpointIP(ep.ipv4, ep.identity, node_ip)
            for ep in self._manager.endpoints()
            if ep.identity is not None
        ]
        nodes = node_addresses(
            self.nodes.values(), self.cluster_nodes, self.node, self._manager.router_ip
        )
        table = ipcache_model.desired_ipcache(
            endpoints, nodes, self.node, {p: int(i) for p, i in self.cidr.prefixes().items()}
        )
        return {
            prefix: IPCacheEntry(entry.identity, entry.tunnel_ip or "0.0.0.0")
            for prefix, entry in table.items()
        }

    async def regenerate(self) -> RegenerationStats:
        async with self._lock:
            started = time.perf_counter()
            revision = self.seen_revision
            await self._refresh_identities()
            view = ServiceView(self.services.values(), self.slices.values(), self.pods.values())
            by_resource = {k: expand(v, view) for k, v in self.policies.items()}
            policies = [p for ps in by_resource.values() for p in ps]
            self._sync_cidr_identities(policies)
            ctx = self._context()
            local = [ep for ep in self._manager.endpoints() if ep.identity is not None]
            refs: dict[int, EndpointRef] = {}
            for ep in local:
                pod = self.pods.get((ep.namespace, ep.pod))
                refs[ep.id] = EndpointRef(
                    id=ep.id,
                    identity=int(ep.identity or INIT),
                    labels=self._ep_labels.get(ep.id, frozenset()),
                    named_ports=named_ports_of(pod) if pod else {},
                )
            changed = frozenset(self._changed_selectables)
            self._changed_selectables.clear()
            settings = (self.mode, self.audit, self.allow_localhost)
            try:
                stale = self._stale(refs, by_resource, changed, ctx.named_ports, settings)
                results: dict[int, EndpointPolicy] = {}
                for ep_id, ref in refs.items():
                    previous = self.endpoint_policies.get(ep_id)
                    if ep_id not in stale and previous is not None:
                        results[ep_id] = replace(previous, revision=revision)
                        continue
                    resolved = resolve(ref, policies, ctx, self.selectors, revision=revision)
                    results[ep_id] = allow_from_host(resolved) if self.allow_localhost else resolved
            except BaseException:
                self._resolved_settings = None  # what changed is lost: all next time
                raise
            state = mapstate.build(results.values())
            policy_changes = await asyncio.to_thread(self._datapath.sync_policy, state)
            for ep in local:
                entry = LxcEntry(
                    ep.id,
                    int(ep.identity or INIT),
                    ep.ipv4,
                    state.flags.get(ep.id, 0),
                    ep.pod_mac,
                    ep.host_mac,
                )
                await asyncio.to_thread(self._datapath.set_endpoint, ep.host_ifindex, entry)
            ipcache_changes = await asyncio.to_thread(
                self._datapath.sync_ipcache, self._desired_ipcache()
            )
            self.endpoint_policies = results
            self._resolved_refs = refs
            self._resolved_policies = by_resource
            self._resolved_named = dict(ctx.named_ports)
            self._resolved_settings = settings
            self.realized_revision = max(self.realized_revision, revision)
            self.regenerations += 1
            stats = RegenerationStats(
                len(local),
                policy_changes,
                ipcache_changes,
                revision,
                time.perf_counter() - started,
                len(stale),
            )
            for observe in self.regeneration_observers:
                observe(stats)
            return stats

    def _stale(
        self,
        refs: Mapping[int, EndpointRef],
        by_resource: Mapping[tuple[str, str, str], tuple[Policy, ...]],
        changed: frozenset[Selectable],
        named: Mapping[int, PeerPorts],
        settings: tuple[object, ...],
    ) -> set[int]:
        """The local endpoints whose policy the changes since the last pass can affect."""
        if settings != self._resolved_settings:
            return set(refs)
        affected = affected_policies(
            self._resolved_policies, by_resource, changed, dict(named) != self._resolved_named
        )
        return stale_endpoints(refs, self._resolved_refs, affected)

    # ---- reporting ------------------------------------------------------------

    def enforcement_of(self, ep_id: int) -> dict[str, str]:
        policy = self.endpoint_policies.get(ep_id)
        if policy is None:
            return {"ingress": "Disabled", "egress": "Disabled"}

        def word(enforced: bool, audit: bool) -> str:
            if not enforced:
                return "Disabled"
            return "Enabled (Audit)" if audit else "Enabled"

        return {
            "ingress": word(policy.ingress.enforced, policy.ingress.audit),
            "egress": word(policy.egress.enforced, policy.egress.audit),
        }
