"""``policy trace``: explain the verdict for one flow, in the spirit of the old
``cilium policy trace`` (cilium-semantics.md §2.10), built on the reference
evaluator. Unlike Cilium's it covers both directions, deny rules, entities
and CIDR peers. Pure: policies and context in, lines out.

Example::

    Tracing From: [k8s:app=client, ...] => To: [k8s:app=web, ...] Ports: [80/TCP]
    Source: endpoint 11 (identity 300, 10.0.1.5)
      selected by CiliumNetworkPolicy/demo/client-egress
    Destination: endpoint 12 (identity 301, 10.0.1.6)
      selected by CiliumNetworkPolicy/demo/allow-web
    Egress from endpoint 11:
      allowed by CiliumNetworkPolicy/demo/client-egress egress[0]
      egress verdict: ALLOWED
    Ingress to endpoint 12:
      denied by CiliumNetworkPolicy/demo/allow-web ingressDeny[0]
      ingress verdict: DENIED
    Final verdict: DENIED
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from axoneme.labels.model import format_labels
from axoneme.policy.reference import (
    Decision,
    LocalEndpoint,
    Peer,
    SideDecision,
    Verdict,
    evaluate,
)
from axoneme.policy.types import Policy, PolicyContext


@dataclass(frozen=True)
class TraceResult:
    verdict: Verdict
    lines: tuple[str, ...]
    decision: Decision

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _describe(peer: Peer) -> str:
    if isinstance(peer, LocalEndpoint):
        return f"endpoint {peer.id} (identity {peer.identity}, {peer.ip})"
    return f"remote peer (identity {peer.identity}, {peer.ip})"


def _selection_lines(role: str, peer: Peer, side: SideDecision | None) -> list[str]:
    lines = [f"{role}: {_describe(peer)}"]
    if side is None:
        lines.append("  not a local endpoint: no policy is enforced on its side")
    elif side.selected_by:
        lines.extend(f"  selected by {ref}" for ref in side.selected_by)
    else:
        lines.append("  selected by no policy")
    return lines


def _side_lines(title: str, side: SideDecision | None) -> list[str]:
    if side is None:
        return []
    lines = [f"{title}:"]
    if side.mode == "never":
        lines.append("  policy enforcement is disabled (mode never)")
    for ref in side.denied_by:
        lines.append(f"  denied by {ref}")
    for ref in side.allowed_by:
        note = f" (not enforced: {', '.join(ref.not_enforced)})" if ref.not_enforced else ""
        overridden = " (overridden by deny)" if side.denied_by else ""
        lines.append(f"  allowed by {ref}{note}{overridden}")
    if side.outcome == "default-deny":
        if side.mode == "always":
            lines.append("  default deny: policy enforcement mode always, no matching allow")
        else:
            by = ", ".join(side.default_deny_by)
            lines.append(f"  default deny: selected by {by} with no matching allow")
    elif side.outcome == "not-enforced" and side.mode != "never":
        lines.append(
            f"  not enforced: no policy selecting the endpoint has default deny for "
            f"{side.direction}"
        )
    if side.dropped and side.audit:
        lines.append("  audit mode: the drop is reported, the packet is let through")
    lines.append(f"  {side.direction} verdict: {side.verdict}")
    return lines


def trace(
    src: Peer,
    dst: Peer,
    proto: str,
    port: int,
    policies: Sequence[Policy],
    ctx: PolicyContext,
) -> TraceResult:
    decision = evaluate(src, dst, proto, port, policies, ctx)
    ports = f"{port}/{proto.upper()}" if proto.upper() in ("TCP", "UDP", "SCTP") else proto.upper()
    lines = [
        f"Tracing From: [{', '.join(format_labels(src.labels))}] => "
        f"To: [{', '.join(format_labels(dst.labels))}] Ports: [{ports}]",
        *_selection_lines("Source", src, decision.egress),
        *_selection_lines("Destination", dst, decision.ingress),
    ]
    if isinstance(src, LocalEndpoint):
        lines += _side_lines(f"Egress from endpoint {src.id}", decision.egress)
    if isinstance(dst, LocalEndpoint):
        lines += _side_lines(f"Ingress to endpoint {dst.id}", decision.ingress)
    lines.append(f"Final verdict: {decision.verdict}")
    return TraceResult(decision.verdict, tuple(lines), decision)
