"""A pure simulation of the datapath's policy lookup over ``EndpointPolicy``.

Mirrors docs/datapath.md, step 3 of the per-packet path, for a *new*
connection (no conntrack): for an endpoint, a direction, the peer's identity
and address and the packet's protocol/port point:

- ``by_identity[peer identity]``, ``by_identity[0]`` and the longest
  ``by_prefix`` match containing the peer address are looked up;
- a deny in any → dropped, reason 181 (POLICY_DENY);
- else an allow in any → allowed;
- else enforced → dropped, reason 133 (POLICY_DENIED); not enforced → allowed;
- a drop in a direction with the audit flag is forwarded with verdict AUDIT.

A flow needs the egress lookup at the source (when it is a local endpoint)
and the ingress lookup at the destination (when it is one). Used as the
executable model the reference evaluator is checked against, and by
``policy trace`` to show what the maps would do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from axoneme.policy import intervals as iv
from axoneme.policy.types import ANY_IDENTITY, DirectionPolicy, EndpointPolicy, PortVerdicts

Outcome = Literal["allowed", "denied", "default-deny", "not-enforced"]
Verdict = Literal["ALLOWED", "DENIED", "AUDIT"]

POLICY_DENIED = 133
POLICY_DENY = 181


@dataclass(frozen=True)
class Hit:
    """One lookup that found an entry covering the packet: ``key`` is
    ``identity:<n>``, ``any`` or ``prefix:<cidr>``; ``verdict`` allow/deny."""

    key: str
    verdict: Literal["allow", "deny"]


@dataclass(frozen=True)
class LookupResult:
    outcome: Outcome
    audit: bool
    hits: tuple[Hit, ...] = ()

    @property
    def dropped(self) -> bool:
        return self.outcome in ("denied", "default-deny")

    @property
    def reason(self) -> int:
        """Drop reason code, 0 when not dropped."""
        return {"denied": POLICY_DENY, "default-deny": POLICY_DENIED}.get(self.outcome, 0)

    @property
    def verdict(self) -> Verdict:
        if not self.dropped:
            return "ALLOWED"
        return "AUDIT" if self.audit else "DENIED"


def longest_prefix(prefixes: Iterable[str], ip: str) -> str | None:
    """The longest of ``prefixes`` containing ``ip``, or None."""
    address = ipaddress.ip_address(ip)
    best: tuple[int, str] | None = None
    for text in prefixes:
        net = ipaddress.ip_network(text, strict=False)
        if (
            address.version == net.version
            and address in net
            and (best is None or net.prefixlen > best[0])
        ):
            best = (net.prefixlen, text)
    return None if best is None else best[1]


def lookup(
    policy: DirectionPolicy, peer_identity: int, peer_ip: str | None, proto: int, port: int
) -> LookupResult:
    """The verdict of one direction for a new connection (module docstring)."""
    value = (proto << 16) | port
    entries: list[tuple[str, PortVerdicts]] = []
    if peer_identity != ANY_IDENTITY and peer_identity in policy.by_identity:
        entries.append((f"identity:{peer_identity}", policy.by_identity[peer_identity]))
    if ANY_IDENTITY in policy.by_identity:
        entries.append(("any", policy.by_identity[ANY_IDENTITY]))
    if peer_ip is not None and policy.by_prefix:
        prefix = longest_prefix(policy.by_prefix, peer_ip)
        if prefix is not None:
            entries.append((f"prefix:{prefix}", policy.by_prefix[prefix]))
    hits: list[Hit] = []
    for key, verdicts in entries:
        if iv.contains(verdicts.deny, value):
            hits.append(Hit(key, "deny"))
        elif iv.contains(verdicts.allow, value):
            hits.append(Hit(key, "allow"))
    outcome: Outcome
    if any(h.verdict == "deny" for h in hits):
        outcome = "denied"
    elif hits:
        outcome = "allowed"
    elif policy.enforced:
        outcome = "default-deny"
    else:
        outcome = "not-enforced"
    return LookupResult(outcome, policy.audit, tuple(hits))


@dataclass(frozen=True)
class FlowResult:
    egress: LookupResult | None  # at the source, when it is a local endpoint
    ingress: LookupResult | None  # at the destination, when it is a local endpoint

    @property
    def verdict(self) -> Verdict:
        sides = [s.verdict for s in (self.egress, self.ingress) if s is not None]
        if "DENIED" in sides:
            return "DENIED"
        return "AUDIT" if "AUDIT" in sides else "ALLOWED"


def simulate(
    src_policy: EndpointPolicy | None,
    dst_policy: EndpointPolicy | None,
    *,
    src_identity: int,
    src_ip: str | None,
    dst_identity: int,
    dst_ip: str | None,
    proto: str | int,
    port: int,
) -> FlowResult:
    """A flow from src to dst; a ``None`` policy means that side is not a local endpoint."""
    number = iv.protocol_number(proto)
    if number not in (6, 17, 132):
        port = 0  # the datapath parses ports of TCP/UDP/SCTP only
    egress = (
        lookup(src_policy.egress, dst_identity, dst_ip, number, port)
        if src_policy is not None
        else None
    )
    ingress = (
        lookup(dst_policy.ingress, src_identity, src_ip, number, port)
        if dst_policy is not None
        else None
    )
    return FlowResult(egress, ingress)
