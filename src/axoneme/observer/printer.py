"""Flows as text: Hubble's compact, dict and table forms, and JSON (pure)."""

from __future__ import annotations

import datetime as dt

from google.protobuf import json_format

from axoneme.datapath import reasons
from axoneme.observer import flow as F
from axoneme.observer.proto import observer_pb2 as pb

__all__ = ["TABLE_HEADER", "compact", "dict_block", "json_line", "table_row"]

_POLICY_WORDS = {pb.FORWARDED: "ALLOWED", pb.DROPPED: "DENIED", pb.AUDIT: "AUDITED"}


def time_text(ts: object) -> str:
    seconds = int(ts.seconds)  # type: ignore[attr-defined]
    nanos = int(ts.nanos)  # type: ignore[attr-defined]
    t = dt.datetime.fromtimestamp(seconds, dt.UTC).replace(microsecond=nanos // 1000)
    return t.strftime("%b %d %H:%M:%S.") + f"{nanos // 1_000_000:03d}"


def _ports(flow: pb.Flow) -> tuple[int, int] | None:
    which = flow.l4.WhichOneof("protocol")
    if which in ("TCP", "UDP", "SCTP"):
        l4 = getattr(flow.l4, which)
        return int(l4.source_port), int(l4.destination_port)
    return None


def _identity(ep: pb.Endpoint) -> str:
    for label in ep.labels:
        if label.startswith("reserved:"):
            return f"({label.removeprefix('reserved:')})"
    return f"(ID:{ep.identity})"


def endpoint_text(ep: pb.Endpoint, ip: str, port: int | None) -> str:
    name = f"{ep.namespace}/{ep.pod_name}" if ep.pod_name else ip
    return (f"{name}:{port}" if port else name) + f" {_identity(ep)}"


def type_text(flow: pb.Flow) -> str:
    """Hubble's type column: the drop reason, ``to-endpoint``, ``policy-verdict:...``."""
    t = flow.event_type.type
    if t == F.MSG_DROP:
        return reasons.describe(flow.drop_reason) if flow.drop_reason else "drop"
    if t == F.MSG_TRACE:
        return F.TRACE_SUBTYPE_NAMES.get(flow.event_type.sub_type, "trace")
    if t == F.MSG_POLICY_VERDICT:
        direction = pb.TrafficDirection.Name(flow.traffic_direction)
        return f"policy-verdict:{'L3-L4' if flow.policy_set else 'none'} {direction}"
    return str(t)


def verdict_text(flow: pb.Flow) -> str:
    if flow.event_type.type == F.MSG_POLICY_VERDICT:
        return _POLICY_WORDS.get(flow.verdict, pb.Verdict.Name(flow.verdict))
    return pb.Verdict.Name(flow.verdict)


def _sides(flow: pb.Flow) -> tuple[str, str, str]:
    ports = _ports(flow)
    sport, dport = ports if ports else (None, None)
    src = endpoint_text(flow.source, flow.IP.source, sport)
    dst = endpoint_text(flow.destination, flow.IP.destination, dport)
    if not flow.HasField("is_reply"):
        return src, "<>", dst
    if flow.is_reply.value:
        return dst, "<-", src  # a reply reads from the client's side, as Hubble prints it
    return src, "->", dst


def compact(resp: pb.GetFlowsResponse, node_name: bool = False) -> str:
    """One line: ``TIME [NODE]: SRC -> DST TYPE VERDICT (SUMMARY)``; loss and node events too."""
    which = resp.WhichOneof("response_types")
    if which == "lost_events":
        lost = resp.lost_events
        source = pb.LostEventSource.Name(lost.source)
        return f"EVENTS LOST: {source} {lost.num_events_lost} ({resp.node_name})"
    if which == "node_status":
        status = resp.node_status
        names = ", ".join(status.node_names)
        return f"{pb.NodeState.Name(status.state_change)}: {names} {status.message}".rstrip()
    flow = resp.flow
    src, arrow, dst = _sides(flow)
    node = f" [{flow.node_name}]" if node_name else ""
    return (
        f"{time_text(flow.time)}{node}: {src} {arrow} {dst} {type_text(flow)} "
        f"{verdict_text(flow)} ({flow.Summary})"
    )


def dict_block(resp: pb.GetFlowsResponse) -> str:
    if resp.WhichOneof("response_types") != "flow":
        return compact(resp)
    flow = resp.flow
    src, _, dst = _sides(flow)
    rows = [
        ("TIMESTAMP", time_text(flow.time)),
        ("NODE", flow.node_name),
        ("SOURCE", src),
        ("DESTINATION", dst),
        ("TYPE", type_text(flow)),
        ("VERDICT", verdict_text(flow)),
        ("SUMMARY", flow.Summary),
    ]
    return "\n".join(f"{k:>11}: {v}" for k, v in rows) + "\n------------"


TABLE_HEADER = (
    f"{'TIMESTAMP':<19}  {'NODE':<10}  {'SOURCE':<34}  {'DESTINATION':<34}  "
    f"{'TYPE':<26}  {'VERDICT':<9}  SUMMARY"
)


def table_row(resp: pb.GetFlowsResponse) -> str:
    if resp.WhichOneof("response_types") != "flow":
        return compact(resp)
    flow = resp.flow
    src, _, dst = _sides(flow)
    return (
        f"{time_text(flow.time):<19}  {flow.node_name:<10}  {src:<34}  {dst:<34}  "
        f"{type_text(flow):<26}  {verdict_text(flow):<9}  {flow.Summary}"
    )


def json_line(resp: pb.GetFlowsResponse) -> str:
    """proto3 JSON of the whole response, one line (as ``hubble observe -o json``)."""
    return json_format.MessageToJson(resp, indent=None, preserving_proto_field_name=False)
