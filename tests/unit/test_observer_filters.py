"""Flow filters against an oracle written independently, and their bad-input errors."""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.observer import flow as F
from axoneme.observer.filters import FilterError, compile_filters, parse_label_selector
from axoneme.observer.flow import Flow, FlowEndpoint, Workload
from axoneme.observer.proto import observer_pb2 as pb

ENDPOINTS = [
    ("10.42.1.2", FlowEndpoint(3, 300, "demo", "client", ("k8s:app=client", "k8s:tier=fe"),
                               (Workload("client", ""),))),
    ("10.42.2.3", FlowEndpoint(0, 400, "demo", "web-2", ("k8s:app=web",), (Workload("web", ""),))),
    ("10.42.1.9", FlowEndpoint(4, 500, "other", "db-0", ("k8s:app=db",), ())),
    ("198.51.100.10", FlowEndpoint(0, 2, "", "", ("reserved:world",), ())),
]  # fmt: skip


@st.composite
def flows(draw: st.DrawFn) -> Flow:
    (sip, src), (dip, dst) = draw(st.permutations(ENDPOINTS))[:2]
    etype = draw(st.sampled_from([F.MSG_DROP, F.MSG_TRACE, F.MSG_POLICY_VERDICT]))
    return Flow(
        seq=draw(st.integers(0, 100)),
        time_ns=draw(st.integers(0, 10)),
        node_name=draw(st.sampled_from(["node1", "node2", "lab-node3"])),
        verdict=draw(st.sampled_from([1, 2, 4])),
        drop_reason=draw(st.sampled_from([0, 133, 181])),
        event_type=etype,
        event_sub_type=draw(st.sampled_from([0, 5, 133])),
        observation_point=5,
        traffic_direction=draw(st.sampled_from([1, 2])),
        is_reply=draw(st.sampled_from([None, True, False])),
        ip_source=sip,
        ip_destination=dip,
        protocol=draw(st.sampled_from([1, 6, 17, 132])),
        source_port=draw(st.sampled_from([80, 40000, 53])),
        destination_port=draw(st.sampled_from([80, 443, 53])),
        tcp_flags=draw(st.sampled_from([0, 2, 0x12, 0x11, 4])),
        source=src,
        destination=dst,
    )


FIELDS: dict[str, Any] = {
    "source_ip": st.sampled_from(["10.42.1.2", "10.42.0.0/16", "10.42.2.0/24", "198.51.100.0/24"]),
    "destination_ip": st.sampled_from(["10.42.2.3", "10.42.1.0/24", "0.0.0.0/0"]),
    "source_pod": st.sampled_from(["demo/", "demo/cli", "other/db", "demo/web"]),
    "destination_pod": st.sampled_from(["demo/", "demo/web", "other/"]),
    "source_label": st.sampled_from(["app=client", "k8s:app=web", "!app", "app in (db,web)",
                                     "tier", "app!=client", "reserved:world"]),
    "destination_label": st.sampled_from(["app=web", "app", "k8s:tier=fe,app=client"]),
    "source_identity": st.sampled_from([300, 2, 500]),
    "destination_identity": st.sampled_from([400, 300]),
    "verdict": st.sampled_from([1, 2, 4]),
    "drop_reason_desc": st.sampled_from(["POLICY_DENIED", "policy_deny"]),
    "protocol": st.sampled_from(["tcp", "UDP", "icmp", "sctp"]),
    "source_port": st.sampled_from(["80", "40000"]),
    "destination_port": st.sampled_from(["80", "443", "53"]),
    "traffic_direction": st.sampled_from([1, 2]),
    "node_name": st.sampled_from(["node1", "node*", "*3"]),
    "reply": st.booleans(),
    "source_workload": st.sampled_from([pb.Workload(name="client"), pb.Workload(name="web")]),
}  # fmt: skip


def oracle_label(selector: str, labels: tuple[str, ...]) -> bool:
    def values(key: str) -> list[str]:
        src, _, name = key.rpartition(":")
        out = []
        for label in labels:
            lsrc, rest = label.split(":", 1)
            k, _, v = rest.partition("=")
            if k == name and (not src or src == lsrc):
                out.append(v)
        return out

    reqs = {"app in (db,web)": lambda: bool({"db", "web"} & set(values("app")))}
    if selector in reqs:
        return reqs[selector]()
    ok = True
    for req in selector.split(","):
        if req.startswith("!"):
            ok &= not values(req[1:])
        elif "!=" in req:
            k, v = req.split("!=")
            ok &= v not in values(k)
        elif "=" in req:
            k, v = req.split("=")
            ok &= v in values(k)
        else:
            ok &= bool(values(req))
    return ok


def oracle_field(name: str, value: Any, f: Flow) -> bool:
    side = f.source if name.startswith("source") else f.destination
    if name in ("source_ip", "destination_ip"):
        ip = f.ip_source if name == "source_ip" else f.ip_destination
        return ipaddress.ip_address(ip) in ipaddress.ip_network(value)
    if name.endswith("_pod"):
        ns, prefix = value.split("/")
        return side.namespace == ns and side.pod_name.startswith(prefix)
    if name.endswith("_label"):
        return oracle_label(value, side.labels)
    if name.endswith("_identity"):
        return side.identity == value
    if name.endswith("_workload"):
        return any(w.name == value.name for w in side.workloads)
    if name.endswith("_port") and name.startswith("source"):
        return f.source_port == int(value)
    if name == "destination_port":
        return f.destination_port == int(value)
    return {
        "verdict": lambda: f.verdict == value,
        "drop_reason_desc": lambda: f.drop_reason == {"POLICY_DENIED": 133}.get(value, 181),
        "protocol": lambda: (
            f.protocol == {"tcp": 6, "udp": 17, "icmp": 1, "sctp": 132}[value.lower()]
        ),
        "traffic_direction": lambda: f.traffic_direction == value,
        "node_name": lambda: fnmatch.fnmatchcase(f.node_name, value),
        "reply": lambda: f.is_reply is value,
    }[name]()


@st.composite
def filters(draw: st.DrawFn) -> dict[str, list[Any]]:
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True))
    return {n: draw(st.lists(FIELDS[n], min_size=1, max_size=2)) for n in names}


def oracle(spec: dict[str, list[Any]], f: Flow) -> bool:
    return all(any(oracle_field(n, v, f) for v in values) for n, values in spec.items())


def to_proto(spec: dict[str, list[Any]]) -> pb.FlowFilter:
    msg = pb.FlowFilter()
    for name, values in spec.items():
        getattr(msg, name).extend(values)
    return msg


@settings(max_examples=300, deadline=None)
@given(st.lists(flows(), min_size=1, max_size=20), st.lists(filters(), max_size=2),
       st.lists(filters(), max_size=2))  # fmt: skip
def test_filters_match_the_oracle(
    sample: list[Flow], white: list[dict[str, list[Any]]], black: list[dict[str, list[Any]]]
) -> None:
    compiled = compile_filters([to_proto(w) for w in white], [to_proto(b) for b in black])
    for f in sample:
        expected = (not white or any(oracle(w, f) for w in white)) and not any(
            oracle(b, f) for b in black
        )
        assert compiled(f) == expected, (f, white, black)


def test_event_type_and_tcp_flags() -> None:
    et = pb.EventTypeFilter(type=F.MSG_TRACE, match_sub_type=True, sub_type=5)
    flt = compile_filters([pb.FlowFilter(event_type=[et])], [])
    base = dict(
        seq=0, time_ns=0, node_name="n", verdict=1, drop_reason=0, observation_point=5,
        traffic_direction=2, is_reply=False, ip_source="1.1.1.1", ip_destination="2.2.2.2",
        protocol=6, source_port=1, destination_port=2, tcp_flags=0x12,
        source=FlowEndpoint(), destination=FlowEndpoint(),
    )  # fmt: skip
    assert flt(Flow(event_type=F.MSG_TRACE, event_sub_type=5, **base))  # type: ignore[arg-type]
    assert not flt(Flow(event_type=F.MSG_TRACE, event_sub_type=0, **base))  # type: ignore[arg-type]
    assert not flt(Flow(event_type=F.MSG_DROP, event_sub_type=5, **base))  # type: ignore[arg-type]
    syn = compile_filters([pb.FlowFilter(tcp_flags=[pb.TCPFlags(SYN=True, ACK=True)])], [])
    assert syn(Flow(event_type=4, event_sub_type=0, **base))  # type: ignore[arg-type]
    only_syn = dict(base, tcp_flags=0x02)
    assert not syn(Flow(event_type=4, event_sub_type=0, **only_syn))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        (pb.FlowFilter(source_ip=["10.0.0.1", "not-an-ip"]), "whitelist[0].source_ip[1]"),
        (pb.FlowFilter(destination_ip=["fd00::/8"]), "whitelist[0].destination_ip[0]"),
        (pb.FlowFilter(source_pod=["nonamespace"]), "whitelist[0].source_pod[0]"),
        (pb.FlowFilter(destination_label=["app=="]), None),  # valid: empty value
        (pb.FlowFilter(source_label=["a b c"]), "whitelist[0].source_label[0]"),
        (pb.FlowFilter(source_label=["!app=x"]), "whitelist[0].source_label[0]"),
        (pb.FlowFilter(destination_port=["0"]), "whitelist[0].destination_port[0]"),
        (pb.FlowFilter(source_port=["http"]), "whitelist[0].source_port[0]"),
        (pb.FlowFilter(protocol=["gre"]), "whitelist[0].protocol[0]"),
        (pb.FlowFilter(verdict=[7]), "whitelist[0].verdict[0]"),  # type: ignore[list-item]
        (pb.FlowFilter(drop_reason_desc=["NOPE"]), "whitelist[0].drop_reason_desc[0]"),
        (pb.FlowFilter(event_type=[pb.EventTypeFilter(type=99)]),
         "whitelist[0].event_type[0].type"),
        (pb.FlowFilter(node_name=[""]), "whitelist[0].node_name[0]"),
        (pb.FlowFilter(traffic_direction=[0]), "whitelist[0].traffic_direction[0]"),
        (pb.FlowFilter(tcp_flags=[pb.TCPFlags()]), "whitelist[0].tcp_flags[0]"),
        (pb.FlowFilter(source_workload=[pb.Workload()]), "whitelist[0].source_workload[0]"),
    ],
)  # fmt: skip
def test_bad_filters_name_their_field(flt: pb.FlowFilter, field: str | None) -> None:
    if field is None:
        compile_filters([flt], [])
        return
    with pytest.raises(FilterError) as err:
        compile_filters([flt], [])
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")


def test_blacklist_fields_are_named_too() -> None:
    with pytest.raises(FilterError, match=r"^blacklist\[1\]\.protocol\[0\]"):
        compile_filters([], [pb.FlowFilter(), pb.FlowFilter(protocol=["x"])])


def test_label_selector_forms() -> None:
    labels = ("k8s:app=web", "k8s:env=prod", "reserved:host")
    assert parse_label_selector("app=web, env in (prod, dev)")(labels)
    assert parse_label_selector("k8s:app==web")(labels)
    assert not parse_label_selector("any:app=db")(labels)
    assert parse_label_selector("env notin (dev)")(labels)
    assert parse_label_selector("reserved:host")(labels)
    with pytest.raises(ValueError, match="empty"):
        parse_label_selector(" ")
