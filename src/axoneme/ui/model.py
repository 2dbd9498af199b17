"""What the UI shows, as pure functions of flows: peers, flow rows, the service map.

Peers are grouped the way Hubble UI groups them: a pod by its workload (the
observer's workload name, else its ``app`` label, else the pod name) within its
namespace; anything else by its reserved identity (``world``, ``host``...), else
by identity number, else by address. Reply flows are left out of the map (an
edge is drawn once, from the side that opened the connection) but are rows in
the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from axoneme.observer import flow as F
from axoneme.observer.proto import observer_pb2 as pb

__all__ = ["FlowView", "Peer", "ServiceMap", "flow_view", "peer_of"]


@dataclass(frozen=True)
class Peer:
    id: str  # the map node's key: "ns/workload", "world", "identity:300", "10.1.2.3"
    namespace: str
    label: str  # what the node shows
    kind: str  # "workload" | "reserved" | "identity" | "ip"


def _workload(ep: pb.Endpoint) -> str:
    if ep.workloads:
        return str(ep.workloads[0].name)
    for label in ep.labels:
        if label.startswith("k8s:app="):
            return str(label.removeprefix("k8s:app="))
    return str(ep.pod_name)


def peer_of(ep: pb.Endpoint, ip: str) -> Peer:
    if ep.pod_name:
        name = _workload(ep)
        return Peer(f"{ep.namespace}/{name}", ep.namespace, name, "workload")
    for label in ep.labels:
        if label.startswith("reserved:"):
            name = label.removeprefix("reserved:")
            return Peer(name, "", name, "reserved")
    if ep.identity:
        return Peer(f"identity:{ep.identity}", "", f"identity {ep.identity}", "identity")
    return Peer(ip or "unknown", "", ip or "unknown", "ip")


@dataclass(frozen=True)
class FlowView:
    time: float
    node: str
    verdict: str
    drop_reason: str
    type: str
    is_reply: bool
    src: Peer
    dst: Peer
    src_pod: str
    dst_pod: str
    src_ip: str
    dst_ip: str
    protocol: str
    dst_port: int
    flags: str
    summary: str

    @property
    def edge(self) -> str:
        return f"{self.src.id}|{self.dst.id}|{self.port_text}"

    @property
    def port_text(self) -> str:
        return f"{self.dst_port}/{self.protocol}" if self.dst_port else self.protocol

    def touches(self, namespace: str) -> bool:
        return not namespace or namespace in (self.src.namespace, self.dst.namespace)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "node": self.node,
            "verdict": self.verdict,
            "dropReason": self.drop_reason,
            "type": self.type,
            "isReply": self.is_reply,
            "src": self.src.id,
            "dst": self.dst.id,
            "srcPod": self.src_pod,
            "dstPod": self.dst_pod,
            "srcIP": self.src_ip,
            "dstIP": self.dst_ip,
            "port": self.port_text,
            "flags": self.flags,
            "summary": self.summary,
            "edge": self.edge,
        }


def _l4(flow: pb.Flow) -> tuple[str, int, str]:
    kind = flow.l4.WhichOneof("protocol")
    if kind is None:
        return "", 0, ""
    l4 = getattr(flow.l4, kind)
    if kind == "ICMPv4":
        return "ICMP", 0, ""
    flags = ""
    if kind == "TCP":
        flags = ",".join(name for _, name in F.TCP_FLAG_NAMES if getattr(l4.flags, name, False))
    return kind, int(l4.destination_port), flags


def _pod(ep: pb.Endpoint) -> str:
    return f"{ep.namespace}/{ep.pod_name}" if ep.pod_name else ""


def flow_view(resp: pb.GetFlowsResponse) -> FlowView | None:
    """The row for one GetFlows answer; None for answers that carry no flow."""
    if not resp.HasField("flow"):
        return None
    f = resp.flow
    protocol, port, flags = _l4(f)
    return FlowView(
        time=f.time.seconds + f.time.nanos / 1e9,
        node=f.node_name,
        verdict=F.VERDICT_NAMES.get(f.verdict, "VERDICT_UNKNOWN"),
        drop_reason=f.drop_reason_desc,
        type=F.TYPE_NAMES.get(f.event_type.type, str(f.event_type.type)),
        is_reply=f.HasField("is_reply") and f.is_reply.value,
        src=peer_of(f.source, f.IP.source),
        dst=peer_of(f.destination, f.IP.destination),
        src_pod=_pod(f.source),
        dst_pod=_pod(f.destination),
        src_ip=f.IP.source,
        dst_ip=f.IP.destination,
        protocol=protocol,
        dst_port=port,
        flags=flags,
        summary=f.Summary,
    )


@dataclass
class _Edge:
    src: str
    dst: str
    port: str
    counts: dict[str, int] = field(default_factory=dict)
    last: float = 0.0

    def verdict(self) -> str:
        dropped = self.counts.get("DROPPED", 0) + self.counts.get("ERROR", 0)
        passed = self.counts.get("FORWARDED", 0) + self.counts.get("AUDIT", 0)
        if dropped and passed:
            return "mixed"
        if dropped:
            return "dropped"
        return "audit" if self.counts.get("AUDIT") else "forwarded"


class ServiceMap:
    """Peers and edges seen so far (one map per namespace view)."""

    def __init__(self) -> None:
        self._peers: dict[str, Peer] = {}
        self._edges: dict[str, _Edge] = {}
        self.version = 0  # bumped on every change: the server sends snapshots when it moves

    def add(self, view: FlowView) -> None:
        if view.is_reply:
            return
        self._peers.setdefault(view.src.id, view.src)
        self._peers.setdefault(view.dst.id, view.dst)
        edge = self._edges.setdefault(view.edge, _Edge(view.src.id, view.dst.id, view.port_text))
        edge.counts[view.verdict] = edge.counts.get(view.verdict, 0) + 1
        edge.last = max(edge.last, view.time)
        self.version += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "nodes": [
                {"id": p.id, "namespace": p.namespace, "label": p.label, "kind": p.kind}
                for p in sorted(self._peers.values(), key=lambda p: p.id)
            ],
            "edges": [
                {
                    "key": key,
                    "src": e.src,
                    "dst": e.dst,
                    "port": e.port,
                    "counts": dict(sorted(e.counts.items())),
                    "verdict": e.verdict(),
                    "last": e.last,
                }
                for key, e in sorted(self._edges.items())
            ],
        }
