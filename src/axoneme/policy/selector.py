"""Label selectors, entities and CIDR peers, and the selector cache.

``matches(selector, labels)`` is Cilium's selector semantics over a label set
(cilium-semantics.md §1.1, §2.2):

- a requirement key with a source (``k8s:app``, ``reserved:host``) matches only
  labels of that source; a bare key (``app``) or ``any:app`` matches the key
  from every source;
- ``In``: some matching label has one of the values; ``NotIn``: no matching
  label has one of the values, so an absent key matches (as in Kubernetes);
  ``Exists`` / ``DoesNotExist``: a matching label is present / absent;
- all requirements must hold; the empty selector matches every label set.

``SelectorCache`` maps each *selectable* -- a ``Selector``, an entity name
(``str``) or a CiliumNetworkPolicy ``CIDRPeer`` (``match_pods=False``) -- to
the frozenset of numeric identities it selects in the identity universe, and
keeps that up to date incrementally: ``add_identity`` / ``remove_identity``
return the selectables whose set changed, so the caller recomputes only the
endpoints whose policies use one of them (``policy_selectables``).

Identity 0 (``reserved:unknown``, the "any identity" key in policy maps) is
never a member of any set. Entities (``pkg/policy/api/entity.go``):

- host 1, remote-node 6, kube-apiserver 7, health 4, init 5, unmanaged 3,
  ingress 8: their reserved number, always (listed in the universe or not);
- world, world-ipv4, world-ipv6: 2 + every identity labelled
  ``reserved:world`` (the CIDR identities);
- cluster: 1, 3..8 + every identity with a ``k8s:io.kubernetes.pod.namespace``
  label;
- all: every identity (the resolver uses the any-identity key 0 instead);
- none and unknown names: nothing.

A CNP CIDR peer selects the CIDR identities (a ``cidr:<prefix>`` label, IPv6
written with ``-`` for ``:``) whose prefix lies inside the peer's cidr and not
inside one of its excepts, plus world (2) when the peer's cidr is a /0. An
identity with several ``cidr:`` labels counts by its longest prefix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from axoneme.identity.reserved import (
    HEALTH,
    HOST,
    INGRESS,
    INIT,
    KUBE_APISERVER,
    REMOTE_NODE,
    UNMANAGED,
    WORLD,
)
from axoneme.labels.model import (
    NAMESPACE_KEY,
    SOURCE_ANY,
    SOURCE_CIDR,
    SOURCE_K8S,
    SOURCE_RESERVED,
    Label,
    LabelSet,
)
from axoneme.policy.types import CIDRPeer, Policy, Requirement, Selector

Selectable = Selector | CIDRPeer | str  # str: an entity name
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_CLUSTER_RESERVED = frozenset({HOST, UNMANAGED, HEALTH, INIT, REMOTE_NODE, KUBE_APISERVER, INGRESS})
_WORLD_ENTITIES = frozenset({"world", "world-ipv4", "world-ipv6"})
# Entities with a fixed reserved identity; these are selected even when the
# identity universe does not list them.
_ENTITY_FIXED: dict[str, frozenset[int]] = {
    "host": frozenset({HOST}),
    "remote-node": frozenset({REMOTE_NODE}),
    "kube-apiserver": frozenset({KUBE_APISERVER}),
    "health": frozenset({HEALTH}),
    "init": frozenset({INIT}),
    "unmanaged": frozenset({UNMANAGED}),
    "ingress": frozenset({INGRESS}),
    "world": frozenset({WORLD}),
    "world-ipv4": frozenset({WORLD}),
    "world-ipv6": frozenset({WORLD}),
    "cluster": _CLUSTER_RESERVED,
}
_WORLD_LABEL = Label(SOURCE_RESERVED, "world")


def split_key(key: str) -> tuple[str, str]:
    """``k8s:app`` → (``k8s``, ``app``); ``app`` → (``any``, ``app``). As
    ``Label.parse``: the part before the first ``:`` is a source only when it
    has no ``.``, ``/`` or ``=``."""
    head, sep, rest = key.partition(":")
    if sep and head and not any(c in head for c in "./="):
        return head, rest
    return SOURCE_ANY, key


def _values_for(source: str, key: str, labels: LabelSet) -> list[str]:
    return [
        label.value
        for label in labels
        if label.key == key and (source == SOURCE_ANY or label.source == source)
    ]


def requirement_matches(req: Requirement, labels: LabelSet) -> bool:
    source, key = split_key(req.key)
    values = _values_for(source, key, labels)
    if req.operator == "In":
        return any(v in req.values for v in values)
    if req.operator == "NotIn":
        return not any(v in req.values for v in values)
    if req.operator == "Exists":
        return bool(values)
    if req.operator == "DoesNotExist":
        return not values
    raise ValueError(f"unknown selector operator {req.operator!r}")


def matches(selector: Selector, labels: LabelSet) -> bool:
    return all(requirement_matches(req, labels) for req in selector.requirements)


def parse_network(text: str) -> Network:
    return ipaddress.ip_network(text, strict=False)


def cidr_label_prefix(labels: LabelSet) -> Network | None:
    """The longest prefix among the ``cidr:`` labels, or None (not a CIDR identity)."""
    best: Network | None = None
    for label in labels:
        if label.source != SOURCE_CIDR:
            continue
        text = label.key
        if ":" not in text and "-" in text:  # IPv6 in label form: 0--0/0
            text = text.replace("-", ":")
        try:
            net = parse_network(text)
        except ValueError:
            continue
        if best is None or net.prefixlen > best.prefixlen:
            best = net
    return best


def subnet_of(inner: Network, outer: Network) -> bool:
    if inner.version != outer.version:
        return False
    return inner.subnet_of(outer)  # type: ignore[arg-type]


def cidr_peer_selects(peer: CIDRPeer, identity: int, labels: LabelSet) -> bool:
    """Whether a CNP CIDR peer selects one identity (``match_pods`` is not consulted)."""
    cidr = parse_network(peer.cidr)
    if identity == WORLD and cidr.prefixlen == 0:
        return True
    prefix = cidr_label_prefix(labels)
    if prefix is None or not subnet_of(prefix, cidr):
        return False
    return not any(subnet_of(prefix, parse_network(e)) for e in peer.excepts)


def entity_selects(entity: str, identity: int, labels: LabelSet) -> bool:
    if identity in _ENTITY_FIXED.get(entity, frozenset()):
        return True
    if entity in _WORLD_ENTITIES:
        return _WORLD_LABEL in labels
    if entity == "cluster":
        return any(lb.source == SOURCE_K8S and lb.key == NAMESPACE_KEY for lb in labels)
    return entity == "all"


def selects(selectable: Selectable, identity: int, labels: LabelSet) -> bool:
    """Whether ``selectable`` selects ``identity`` with ``labels`` (never identity 0)."""
    if identity == 0:
        return False
    if isinstance(selectable, Selector):
        return matches(selectable, labels)
    if isinstance(selectable, CIDRPeer):
        return cidr_peer_selects(selectable, identity, labels)
    return entity_selects(selectable, identity, labels)


def _fixed(selectable: Selectable) -> frozenset[int]:
    """Identities selected whether or not they are in the universe."""
    if isinstance(selectable, str):
        return _ENTITY_FIXED.get(selectable, frozenset())
    if isinstance(selectable, CIDRPeer) and parse_network(selectable.cidr).prefixlen == 0:
        return frozenset({WORLD})
    return frozenset()


def policy_selectables(policy: Policy) -> frozenset[Selectable]:
    """Everything in a policy's peers that the selector cache resolves (the
    entity ``all``, ``any_peer`` and NetworkPolicy ipBlocks are not cached:
    the resolver keys them by identity 0 or by prefix)."""
    out: set[Selectable] = set()
    for rule in policy.rules:
        out.update(rule.peers.selectors)
        out.update(e for e in rule.peers.entities if e != "all")
        out.update(c for c in rule.peers.cidrs if not c.match_pods)
    return frozenset(out)


Anchor = tuple[str, str]  # (label key, value), whatever the label's source


def anchors(selectable: Selectable) -> frozenset[Anchor] | None:
    """Labels of which every identity the selectable selects has at least one
    (its first ``In`` requirement's key and values), or None when there are none
    (entities, CIDR peers, selectors without ``In``). Only a prefilter: the
    exact test is ``selects``."""
    if not isinstance(selectable, Selector):
        return None
    for req in selectable.requirements:
        if req.operator == "In":
            _, key = split_key(req.key)
            return frozenset((key, v) for v in req.values)
    return None


class SelectorCache:
    """Selectable → selected identities, over a mutable identity universe.

    Deterministic and side-effect free apart from its own state (no I/O, no
    clock); inputs and outputs are frozen values. ``select`` registers a
    selectable on first use; ``add_identity`` / ``remove_identity`` update the
    registered sets and return the ones that changed.

    Not quadratic: identities are indexed by label and selectors by their
    anchor labels (``anchors``), so registering a selector tests only the
    identities carrying one of its anchors, and an identity change tests only
    the selectors anchored on one of its labels, the unanchored ones, and those
    that held it before.
    """

    def __init__(
        self,
        identities: Mapping[int, LabelSet] | None = None,
        selectables: Iterable[Selectable] = (),
    ) -> None:
        self._identities: dict[int, LabelSet] = {}
        self._sets: dict[Selectable, frozenset[int]] = {}
        self._by_label: dict[Anchor, set[int]] = {}  # label → identities carrying it
        self._anchored: dict[Anchor, set[Selectable]] = {}  # anchor → selectables
        self._unanchored: set[Selectable] = set()
        self._member_of: dict[int, set[Selectable]] = {}  # identity → sets holding it
        for identity, labels in (identities or {}).items():
            self._index(identity, labels)
        for selectable in selectables:
            self.register(selectable)

    def _index(self, identity: int, labels: LabelSet) -> None:
        self._identities[identity] = labels
        for label in labels:
            self._by_label.setdefault((label.key, label.value), set()).add(identity)

    def _unindex(self, identity: int) -> None:
        for label in self._identities.pop(identity, frozenset()):
            found = self._by_label.get((label.key, label.value))
            if found is not None:
                found.discard(identity)
                if not found:
                    del self._by_label[(label.key, label.value)]

    @property
    def identities(self) -> Mapping[int, LabelSet]:
        return dict(self._identities)

    def _compute(self, selectable: Selectable) -> frozenset[int]:
        marks = anchors(selectable)
        if marks is None:
            candidates: Iterable[int] = self._identities
        else:
            candidates = set().union(*(self._by_label.get(a, ()) for a in marks))
        found = {i for i in candidates if selects(selectable, i, self._identities[i])}
        return frozenset(found) | _fixed(selectable)

    def register(self, selectable: Selectable) -> frozenset[int]:
        current = self._sets.get(selectable)
        if current is None:
            current = self._sets[selectable] = self._compute(selectable)
            marks = anchors(selectable)
            if marks is None:
                self._unanchored.add(selectable)
            else:
                for mark in marks:
                    self._anchored.setdefault(mark, set()).add(selectable)
            for identity in current:
                self._member_of.setdefault(identity, set()).add(selectable)
        return current

    select = register

    def unregister(self, selectable: Selectable) -> None:
        current = self._sets.pop(selectable, None)
        if current is None:
            return
        self._unanchored.discard(selectable)
        for mark in anchors(selectable) or ():
            holders = self._anchored.get(mark)
            if holders is not None:
                holders.discard(selectable)
                if not holders:
                    del self._anchored[mark]
        for identity in current:
            held = self._member_of.get(identity)
            if held is not None:
                held.discard(selectable)
                if not held:
                    del self._member_of[identity]

    def retain(self, selectables: Iterable[Selectable]) -> None:
        """Forget every registered selectable not in ``selectables``."""
        keep = set(selectables)
        for selectable in [s for s in self._sets if s not in keep]:
            self.unregister(selectable)

    def selectables(self) -> frozenset[Selectable]:
        return frozenset(self._sets)

    def snapshot(self) -> dict[Selectable, frozenset[int]]:
        return dict(self._sets)

    def add_identity(self, identity: int, labels: LabelSet) -> frozenset[Selectable]:
        """Add (or relabel) one identity; returns the selectables whose set changed."""
        if self._identities.get(identity) == labels:
            return frozenset()
        self._unindex(identity)
        self._index(identity, labels)
        return self._update(identity, labels)

    def remove_identity(self, identity: int) -> frozenset[Selectable]:
        if identity not in self._identities:
            return frozenset()
        self._unindex(identity)
        return self._update(identity, None)

    def _update(self, identity: int, labels: LabelSet | None) -> frozenset[Selectable]:
        # Only these can change: selectors anchored on one of the new labels, the
        # unanchored ones, and those that hold the identity now.
        candidates = set(self._unanchored) | self._member_of.get(identity, set())
        for label in labels or ():
            candidates |= self._anchored.get((label.key, label.value), set())
        changed: list[Selectable] = []
        for selectable in candidates:
            current = self._sets[selectable]
            member = identity in _fixed(selectable) or (
                labels is not None and selects(selectable, identity, labels)
            )
            if member != (identity in current):
                changed.append(selectable)
        held = self._member_of.setdefault(identity, set())
        for selectable in changed:
            current = self._sets[selectable]
            if identity in current:
                self._sets[selectable] = current - {identity}
                held.discard(selectable)
            else:
                self._sets[selectable] = current | {identity}
                held.add(selectable)
        if not held:
            del self._member_of[identity]
        return frozenset(changed)
