"""Flow (Python) -> Flow (protobuf): a field-by-field copy (pure)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from axoneme.observer import flow as F
from axoneme.observer.flow import Flow, FlowEndpoint
from axoneme.observer.proto import observer_pb2 as pb

__all__ = ["flow_to_proto", "summary", "timestamp"]


def timestamp(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def _endpoint(ep: FlowEndpoint) -> pb.Endpoint:
    return pb.Endpoint(
        ID=ep.id,
        identity=ep.identity,
        namespace=ep.namespace,
        pod_name=ep.pod_name,
        labels=ep.labels,
        workloads=[pb.Workload(name=w.name, kind=w.kind) for w in ep.workloads],
    )


def _service(ref: str) -> pb.Service | None:
    if not ref:
        return None
    ns, _, name = ref.rpartition("/")
    return pb.Service(name=name, namespace=ns)


def _l4(flow: Flow) -> pb.Layer4:
    sport, dport = flow.source_port, flow.destination_port
    if flow.protocol == 6:
        bits = flow.tcp_flags
        flags = pb.TCPFlags(
            FIN=bool(bits & F.TCP_FIN), SYN=bool(bits & F.TCP_SYN), RST=bool(bits & F.TCP_RST),
            PSH=bool(bits & F.TCP_PSH), ACK=bool(bits & F.TCP_ACK), URG=bool(bits & F.TCP_URG),
            ECE=bool(bits & F.TCP_ECE), CWR=bool(bits & F.TCP_CWR),
        )  # fmt: skip
        return pb.Layer4(TCP=pb.TCP(source_port=sport, destination_port=dport, flags=flags))
    if flow.protocol == 17:
        return pb.Layer4(UDP=pb.UDP(source_port=sport, destination_port=dport))
    if flow.protocol == 132:
        return pb.Layer4(SCTP=pb.SCTP(source_port=sport, destination_port=dport))
    if flow.protocol == 1:
        return pb.Layer4(ICMPv4=pb.ICMPv4())
    return pb.Layer4()


def summary(flow: Flow) -> str:
    """Hubble's summary column: TCP flags, the protocol otherwise."""
    if flow.protocol == 6:
        return "TCP Flags: " + ", ".join(flow.tcp_flag_names()) if flow.tcp_flags else "TCP"
    return flow.protocol_name


def flow_to_proto(flow: Flow) -> pb.Flow:
    msg = pb.Flow(
        time=timestamp(flow.time_ns),
        uuid=f"{flow.node_name}:{flow.seq}",
        verdict=flow.verdict,  # type: ignore[arg-type]
        drop_reason=flow.drop_reason,
        IP=pb.IP(source=flow.ip_source, destination=flow.ip_destination, ipVersion=pb.IPv4),
        l4=_l4(flow),
        source=_endpoint(flow.source),
        destination=_endpoint(flow.destination),
        Type=pb.L3_L4,
        node_name=flow.node_name,
        event_type=pb.CiliumEventType(type=flow.event_type, sub_type=flow.event_sub_type),
        source_service=_service(flow.source_service),
        destination_service=_service(flow.destination_service),
        traffic_direction=flow.traffic_direction,  # type: ignore[arg-type]
        trace_observation_point=flow.observation_point,  # type: ignore[arg-type]
        drop_reason_desc=flow.drop_reason_desc,
        interface_index=flow.interface_index,
        policy_set=flow.policy_set,
        Summary=summary(flow),
    )
    if flow.is_reply is not None:
        msg.is_reply.value = flow.is_reply
    return msg
