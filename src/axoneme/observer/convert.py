"""Flow (Python) -> Flow (protobuf): a field-by-field copy (pure)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from axoneme.observer import flow as F
from axoneme.observer.flow import Flow, FlowEndpoint
from axoneme.observer.proto import observer_pb2 as pb

__all__ = ["flow_to_proto", "summary", "timestamp"]


def timestamp(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


_endpoints: dict[FlowEndpoint, pb.Endpoint] = {}
_flags: dict[int, pb.TCPFlags] = {}


def _endpoint(ep: FlowEndpoint) -> pb.Endpoint:
    """Endpoints repeat from flow to flow: each message is built once (bounded cache)."""
    msg = _endpoints.get(ep)
    if msg is None:
        if len(_endpoints) > 4096:
            _endpoints.clear()
        msg = _endpoints[ep] = _build_endpoint(ep)
    return msg


def _build_endpoint(ep: FlowEndpoint) -> pb.Endpoint:
    return pb.Endpoint(
        ID=ep.id,
        identity=ep.identity,
        namespace=ep.namespace,
        pod_name=ep.pod_name,
        labels=ep.labels,
        workloads=[pb.Workload(name=w.name, kind=w.kind) for w in ep.workloads],
    )


def _tcp_flags(bits: int) -> pb.TCPFlags:
    return pb.TCPFlags(
        FIN=bool(bits & F.TCP_FIN), SYN=bool(bits & F.TCP_SYN), RST=bool(bits & F.TCP_RST),
        PSH=bool(bits & F.TCP_PSH), ACK=bool(bits & F.TCP_ACK), URG=bool(bits & F.TCP_URG),
        ECE=bool(bits & F.TCP_ECE), CWR=bool(bits & F.TCP_CWR),
    )  # fmt: skip


def summary(flow: Flow) -> str:
    """Hubble's summary column: TCP flags, the protocol otherwise."""
    if flow.protocol == 6:
        return "TCP Flags: " + ", ".join(flow.tcp_flag_names()) if flow.tcp_flags else "TCP"
    return flow.protocol_name


def fill_flow(msg: pb.Flow, flow: Flow) -> None:
    """Set ``msg`` (an empty Flow, e.g. a response's) field by field, in place: building
    submessages separately and passing them in copies each one again."""
    msg.time.seconds, msg.time.nanos = divmod(flow.time_ns, 1_000_000_000)
    msg.uuid = f"{flow.node_name}:{flow.seq}"
    msg.verdict = flow.verdict  # type: ignore[assignment]
    msg.drop_reason = flow.drop_reason
    msg.IP.source, msg.IP.destination, msg.IP.ipVersion = (
        flow.ip_source, flow.ip_destination, pb.IPv4,
    )  # fmt: skip
    sport, dport, proto = flow.source_port, flow.destination_port, flow.protocol
    if proto == 6:
        tcp = msg.l4.TCP
        tcp.source_port, tcp.destination_port = sport, dport
        flags = _flags.get(flow.tcp_flags)
        if flags is None:
            flags = _flags[flow.tcp_flags] = _tcp_flags(flow.tcp_flags)
        tcp.flags.CopyFrom(flags)
    elif proto in (17, 132):
        l4 = msg.l4.UDP if proto == 17 else msg.l4.SCTP
        l4.source_port, l4.destination_port = sport, dport
    elif proto == 1:
        msg.l4.ICMPv4.SetInParent()
    msg.source.CopyFrom(_endpoint(flow.source))
    msg.destination.CopyFrom(_endpoint(flow.destination))
    msg.Type = pb.L3_L4
    msg.node_name = flow.node_name
    msg.event_type.type, msg.event_type.sub_type = flow.event_type, flow.event_sub_type
    if flow.source_service:
        ns, _, name = flow.source_service.rpartition("/")
        msg.source_service.namespace, msg.source_service.name = ns, name
    if flow.destination_service:
        ns, _, name = flow.destination_service.rpartition("/")
        msg.destination_service.namespace, msg.destination_service.name = ns, name
    msg.traffic_direction = flow.traffic_direction  # type: ignore[assignment]
    msg.trace_observation_point = flow.observation_point  # type: ignore[assignment]
    if flow.drop_reason:
        msg.drop_reason_desc = flow.drop_reason_desc
    msg.interface_index = flow.interface_index
    msg.policy_set = flow.policy_set
    msg.Summary = summary(flow)
    if flow.is_reply is not None:
        msg.is_reply.value = flow.is_reply


def flow_to_proto(flow: Flow) -> pb.Flow:
    msg = pb.Flow()
    fill_flow(msg, flow)
    return msg
