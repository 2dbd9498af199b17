"""Endpoint policies → the exact contents of the policy maps (pure).

``axo_policy`` and ``axo_policy_cidr`` point at port sets by ``set_id``;
``axo_policy_ports`` holds each port set once. A set's ID is derived from its
content, so identical verdicts share one set on a node, recomputation gives the
same IDs (only real changes reach the kernel), and a restarted agent computes
the IDs its predecessor wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from axoneme.policy.types import DirectionPolicy, EndpointPolicy, PortVerdicts

DIR_INGRESS = 0
DIR_EGRESS = 1

# (identity, endpoint id, direction)
IdentityKey = tuple[int, int, int]
# (endpoint id, direction, prefix "a.b.c.d/n")
PrefixKey = tuple[int, int, str]
# One LPM entry of a port set, as the datapath encoder produces it:
# (prefixlen, proto, port, verdict) with verdict 1 allow / 2 deny.
PortEntry = tuple[int, int, int, int]
PortEncoder = Callable[[PortVerdicts], Iterable[PortEntry]]

FLAG_INGRESS_ENFORCED = 1
FLAG_EGRESS_ENFORCED = 2
FLAG_INGRESS_AUDIT = 4
FLAG_EGRESS_AUDIT = 8


@dataclass
class MapState:
    by_identity: dict[IdentityKey, int] = field(default_factory=dict)
    by_prefix: dict[PrefixKey, int] = field(default_factory=dict)
    port_sets: dict[int, PortVerdicts] = field(default_factory=dict)
    flags: dict[int, int] = field(default_factory=dict)  # endpoint id → lxc flags


def set_id_of(verdicts: PortVerdicts, taken: dict[int, PortVerdicts]) -> int:
    """A stable, content-derived 31-bit ID (0 is never used), probing on collision."""
    digest = hashlib.sha256(repr((verdicts.allow, verdicts.deny)).encode()).digest()
    candidate = (int.from_bytes(digest[:4], "big") & 0x7FFFFFFF) or 1
    while candidate in taken and taken[candidate] != verdicts:
        candidate = (candidate % 0x7FFFFFFF) + 1
    return candidate


def endpoint_flags(policy: EndpointPolicy) -> int:
    flags = 0
    if policy.ingress.enforced:
        flags |= FLAG_INGRESS_ENFORCED
    if policy.egress.enforced:
        flags |= FLAG_EGRESS_ENFORCED
    if policy.ingress.audit:
        flags |= FLAG_INGRESS_AUDIT
    if policy.egress.audit:
        flags |= FLAG_EGRESS_AUDIT
    return flags


def build(policies: Iterable[EndpointPolicy]) -> MapState:
    state = MapState()

    def intern(verdicts: PortVerdicts) -> int:
        set_id = set_id_of(verdicts, state.port_sets)
        state.port_sets[set_id] = verdicts
        return set_id

    for policy in policies:
        state.flags[policy.endpoint_id] = endpoint_flags(policy)
        for direction, dp in ((DIR_INGRESS, policy.ingress), (DIR_EGRESS, policy.egress)):
            _add_direction(state, policy.endpoint_id, direction, dp, intern)
    return state


def _add_direction(
    state: MapState,
    ep: int,
    direction: int,
    dp: DirectionPolicy,
    intern: Callable[[PortVerdicts], int],
) -> None:
    for identity, verdicts in dp.by_identity.items():
        if verdicts.allow or verdicts.deny:
            state.by_identity[(identity, ep, direction)] = intern(verdicts)
    for prefix, verdicts in dp.by_prefix.items():
        # An empty set is written too: it is a carve-out (an ipBlock ``except``)
        # that must shadow the enclosing prefix in the longest-prefix match.
        state.by_prefix[(ep, direction, prefix)] = intern(verdicts)


def port_entries(state: MapState, encode: PortEncoder) -> dict[tuple[int, int, int, int], int]:
    """(set_id, prefixlen, proto, port) → verdict for every port set."""
    out: dict[tuple[int, int, int, int], int] = {}
    for set_id, verdicts in state.port_sets.items():
        for prefixlen, proto, port, verdict in encode(verdicts):
            out[(set_id, prefixlen, proto, port)] = verdict
    return out


K = tuple[object, ...]


def diff(current: dict[K, int], desired: dict[K, int]) -> tuple[dict[K, int], list[K]]:
    """Entries to write and keys to delete to turn ``current`` into ``desired``."""
    upserts = {k: v for k, v in desired.items() if current.get(k) != v}
    deletes = [k for k in current if k not in desired]
    return upserts, deletes
