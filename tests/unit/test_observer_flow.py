"""Datapath records -> flows: fields, enrichment, the ring, the proto form."""

from __future__ import annotations

import numpy as np
import pytest
from observer_helpers import directory, record, records

from axoneme.datapath import events as E
from axoneme.observer import flow as F
from axoneme.observer.convert import flow_to_proto
from axoneme.observer.proto import observer_pb2 as pb
from axoneme.observer.ring import FlowRing


def ring_of(*items: dict[str, object], capacity: int = 16) -> FlowRing:
    ring = FlowRing(capacity, "node1", 5_000)
    ring.set_resolver(directory())
    ring.extend(records(*items))
    return ring


def test_dtype_matches_the_struct_codec() -> None:
    raw = record(saddr="1.2.3.4", daddr="5.6.7.8", sport=1234, dport=4321, cookie=77)
    (row,) = F.rows(raw.reshape(1, -1))
    decoded = E.decode(raw.tobytes())
    as_dict = dict(zip(F.EVENT_FIELDS, row, strict=True))
    assert as_dict["sport"] == decoded.sport == 1234
    assert as_dict["dport"] == decoded.dport == 4321
    assert as_dict["saddr"] == F.ip_to_int("1.2.3.4")
    assert as_dict["cookie"] == 77
    assert F.EVENT_DTYPE.itemsize == E.EVENT_SIZE


def test_policy_drop_is_enriched_both_sides() -> None:
    (flow,) = ring_of({}).flows(0, 1)
    assert flow.verdict_name == "DROPPED"
    assert (flow.drop_reason, flow.drop_reason_desc) == (133, "POLICY_DENIED")
    assert flow.type_name == "drop" and flow.event_sub_type == 133
    assert flow.traffic_direction == F.EGRESS and flow.observation_point == F.POINT_FROM_ENDPOINT
    assert flow.is_reply is False
    assert flow.time_ns == 1_000_000_000 + 5_000
    assert (flow.source.namespace, flow.source.pod_name, flow.source.id) == ("demo", "client", 3)
    assert flow.source.identity == 300
    assert flow.source.labels == ("k8s:app=client", "k8s:tier=fe")
    assert flow.source.workloads == (F.Workload("client", ""),)
    assert (flow.destination.pod_name, flow.destination.identity) == ("web-2", 400)
    assert flow.tcp_flag_names() == ["SYN"]


def test_trace_reply_and_world_peer() -> None:
    (flow,) = ring_of(
        dict(type=E.EVENT_TRACE, verdict=1, reason=0, dir=0, ct_state=E.CT_REPLY,
             saddr="198.51.100.10", src_identity=2, daddr="10.42.1.2", dst_identity=300,
             sport=80, dport=40000, tcp_flags=0x12),
    ).flows(0, 1)  # fmt: skip
    assert flow.type_name == "trace" and flow.sub_type_name == "to-endpoint"
    assert flow.is_reply is True
    assert flow.traffic_direction == F.INGRESS
    assert flow.source.pod_name == "" and flow.source.labels == ("reserved:world",)
    assert flow.destination.pod_name == "client"
    assert flow.tcp_flag_names() == ["SYN", "ACK"]


def test_audit_verdict_and_non_policy_drop() -> None:
    ring = ring_of(
        dict(type=E.EVENT_POLICY_VERDICT, verdict=4, reason=133),
        dict(type=E.EVENT_DROP, reason=134),
    )
    audit, invalid = ring.flows(0, 2)
    assert audit.verdict_name == "AUDIT" and audit.type_name == "policy-verdict"
    assert audit.drop_reason_desc == "POLICY_DENIED"
    assert invalid.is_reply is None  # dropped before conntrack: unknown


def test_identity_mismatch_keeps_the_packets_identity() -> None:
    (flow,) = ring_of(dict(dst_identity=999)).flows(0, 1)
    assert flow.destination.identity == 999 and flow.destination.pod_name == ""


def test_ring_keeps_the_last_n_and_decodes_each_once() -> None:
    ring = FlowRing(4, "n", 0)
    ring.extend(records(*[dict(sport=i + 1) for i in range(6)]))
    assert (ring.oldest, ring.head, len(ring)) == (2, 6, 4)
    got = ring.flows(0, 10)
    assert [f.source_port for f in got] == [3, 4, 5, 6]
    assert [f.seq for f in got] == [2, 3, 4, 5]
    assert ring.flows(2, 6)[0] is got[0]  # memoised
    ring.extend(records(*[dict(sport=100 + i) for i in range(9)]))  # more than the capacity
    assert [f.source_port for f in ring.flows(0, 100)] == [105, 106, 107, 108]


def test_ring_resolves_with_the_directory_of_the_batch() -> None:
    ring = FlowRing(8, "n", 0)
    ring.extend(records({}))
    ring.set_resolver(directory())
    ring.extend(records({}))
    first, second = ring.flows(0, 2)
    assert first.source.pod_name == "" and second.source.pod_name == "client"


def test_rows_rejects_a_bad_shape() -> None:
    with pytest.raises(ValueError, match="records must be"):
        F.rows(np.zeros((2, 10), np.uint8))


def test_proto_form() -> None:
    (flow,) = ring_of({}).flows(0, 1)
    msg = flow_to_proto(flow)
    assert msg.verdict == pb.DROPPED and msg.drop_reason_desc == "POLICY_DENIED"
    assert msg.l4.TCP.flags.SYN and not msg.l4.TCP.flags.ACK
    assert msg.l4.TCP.destination_port == 80
    assert msg.source.pod_name == "client" and msg.destination.identity == 400
    assert msg.event_type.type == F.MSG_DROP and msg.event_type.sub_type == 133
    assert msg.is_reply.value is False and msg.HasField("is_reply")
    assert msg.traffic_direction == pb.EGRESS
    assert msg.Summary == "TCP Flags: SYN"
    assert msg.uuid == "node1:0"


def test_proto_form_udp_icmp_and_service() -> None:
    ring = FlowRing(8, "node1", 0)
    d = directory()
    d.services = lambda ip, port, proto: "demo/web" if (ip, port) == ("10.42.2.3", 53) else ""
    ring.set_resolver(d)
    ring.extend(records(dict(proto=17, dport=53, tcp_flags=0), dict(proto=1, sport=0, dport=0)))
    udp, icmp = (flow_to_proto(f) for f in ring.flows(0, 2))
    assert udp.l4.WhichOneof("protocol") == "UDP" and udp.l4.UDP.destination_port == 53
    assert (udp.destination_service.namespace, udp.destination_service.name) == ("demo", "web")
    assert not udp.HasField("source_service") and udp.Summary == "UDP"
    assert icmp.l4.WhichOneof("protocol") == "ICMPv4" and not icmp.HasField("destination_service")
