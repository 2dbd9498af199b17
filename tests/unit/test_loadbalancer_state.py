"""Frontends from Services and EndpointSlices; the map contents they program."""

from __future__ import annotations

from typing import Any

from axoneme.datapath.linux.lbmaps import (
    LB_BE_LOCAL,
    LB_BE_TERMINATING,
    LB_F_AFFINITY,
    LB_F_MAGLEV,
    LB_F_TWO_SCOPES,
    LB_SCOPE_EXT,
    LB_SCOPE_INT,
    Backend,
    SvcKey,
    SvcValue,
    unpack_maglev,
    unpack_slot_key,
)
from axoneme.datapath.linux.lbprogram import Ids, program
from axoneme.k8s.service import parse_endpointslice, parse_service
from axoneme.loadbalancer.state import LBConfig, desired_frontends


def service(name: str = "web", **spec: Any) -> Any:
    raw = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "demo", "annotations": spec.pop("ann", {})},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}], **spec},
    }
    return parse_service(raw)


def slice_(*endpoints: Any, service: str = "web", port: int = 8080) -> Any:
    return parse_endpointslice(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{service}-x",
                "namespace": "demo",
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": list(endpoints),
            "ports": [{"name": "http", "port": port}],
        }
    )


def ep(ip: str, node: str = "node1", **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


CFG = LBConfig("node1")


def test_cluster_ip_external_ip_and_lb_frontends() -> None:
    svc = service(type="LoadBalancer", externalIPs=["198.51.100.20"])
    svc = parse_service(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.96.0.10",
                "externalIPs": ["198.51.100.20"],
                "ports": [{"name": "http", "port": 80}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
        }
    )
    fes = desired_frontends([svc], [slice_(ep("10.42.1.2"))], CFG)
    assert [(f.ip, f.type) for f in fes] == [
        ("10.96.0.10", "ClusterIP"),
        ("198.51.100.20", "ExternalIPs"),
        ("192.0.2.1", "LoadBalancer"),
    ]
    assert all([b.name for b in f.active] == ["10.42.1.2:8080"] for f in fes)


def test_terminating_backends_are_kept_but_not_active() -> None:
    (fe,) = desired_frontends(
        [service()],
        [
            slice_(
                ep("10.42.1.2"),
                ep("10.42.1.3", ready=False, serving=True, terminating=True),
                ep("10.42.1.4", ready=False, serving=False),
            )
        ],
        CFG,
    )
    assert [b.ip for b in fe.backends] == ["10.42.1.2", "10.42.1.3"]
    assert [b.ip for b in fe.active] == ["10.42.1.2"]


def test_only_terminating_left_still_serves() -> None:
    (fe,) = desired_frontends(
        [service()], [slice_(ep("10.42.1.3", ready=False, serving=True, terminating=True))], CFG
    )
    assert [b.ip for b in fe.active] == ["10.42.1.3"]


def test_internal_traffic_policy_local_keeps_this_nodes_backends() -> None:
    svc = service(internalTrafficPolicy="Local")
    slices = [slice_(ep("10.42.1.2", "node1"), ep("10.42.2.2", "node2"))]
    (fe,) = desired_frontends([svc], slices, CFG)
    assert [b.ip for b in fe.active] == ["10.42.1.2"]
    (fe2,) = desired_frontends([svc], slices, LBConfig("node3"))
    assert fe2.active == ()


def test_ports_are_matched_by_name_and_other_services_slices_ignored() -> None:
    (fe,) = desired_frontends(
        [service()], [slice_(ep("10.42.1.2")), slice_(ep("10.42.1.9"), service="db")], CFG
    )
    assert [b.name for b in fe.backends] == ["10.42.1.2:8080"]


def test_headless_and_unallocated_services_have_no_frontends() -> None:
    assert desired_frontends([service(clusterIP="None")], [], CFG) == []


def test_program_maps_and_stable_ids() -> None:
    svc = service(
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 7}},
        ann={"service.axoneme.io/lb-algorithm": "maglev"},
    )
    slices = [slice_(ep("10.42.1.2"), ep("10.42.1.3", ready=False, serving=True, terminating=True))]
    fes = desired_frontends([svc, service("empty", clusterIP="10.96.0.11")], slices, CFG)
    contents, ids = program(fes, Ids(), maglev_size=251)
    svcs = {SvcKey.unpack(k): SvcValue.unpack(v) for k, v in contents.maps["axo_lb_svc"].items()}
    web = svcs[SvcKey("10.96.0.10", 80, 6)]
    assert web.count == 1 and web.flags == LB_F_MAGLEV | LB_F_AFFINITY
    assert web.affinity_timeout == 7 and web.maglev_size == 251
    assert svcs[SvcKey("10.96.0.11", 80, 6)].count == 0
    backends = {int.from_bytes(k, "little"): Backend.unpack(v)
                for k, v in contents.maps["axo_lb_backend"].items()}  # fmt: skip
    term = [b for b in backends.values() if b.flags & LB_BE_TERMINATING]
    assert [b.ip for b in term] == ["10.42.1.3"]
    (slot,) = contents.maps["axo_lb_slot"].items()
    assert unpack_slot_key(slot[0]) == (web.svc_id, 1)
    active_id = int.from_bytes(slot[1], "little")
    assert backends[active_id].ip == "10.42.1.2"
    table = unpack_maglev(contents.maps["axo_lb_maglev"][web.svc_id.to_bytes(4, "little")], 251)
    assert set(table) == {active_id}
    # A second run with the ids handed back changes nothing; new services get fresh ids.
    again, ids2 = program(fes, ids, maglev_size=251)
    assert again.maps == contents.maps and ids2 == ids
    more = desired_frontends([svc, service("other", clusterIP="10.96.0.12")], slices, CFG)
    _, ids3 = program(more, ids, maglev_size=251)
    assert ids3.svc[("10.96.0.10", 80, 6, 0)] == web.svc_id
    assert ids3.svc[("10.96.0.12", 80, 6, 0)] not in (web.svc_id,)


def test_node_port_frontends_and_external_traffic_policy_local() -> None:
    raw_ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    cluster = service(type="NodePort", ports=raw_ports)
    local_ports = [{**raw_ports[0], "nodePort": 30081}]
    local = service(
        "loc", clusterIP="10.96.0.11", type="NodePort", externalTrafficPolicy="Local",
        ports=local_ports,
    )  # fmt: skip
    both = (ep("10.42.1.2", "node1"), ep("10.42.2.2", "node2"))
    slices = [slice_(*both), slice_(*both, service="loc")]
    fes = desired_frontends([cluster, local], slices, LBConfig("node1", node_ip="172.30.0.11"))
    by = {(f.ip, f.port): f for f in fes if not f.internal}
    assert by[("172.30.0.11", 30080)].type == "NodePort"
    assert len(by[("172.30.0.11", 30080)].active) == 2
    assert [b.ip for b in by[("172.30.0.11", 30081)].active] == ["10.42.1.2"]
    assert len(by[("10.96.0.11", 80)].active) == 2  # the cluster IP keeps every backend
    # externalTrafficPolicy: Local: the external entry has an internal twin with
    # every backend, for in-cluster clients; eTP Cluster and cluster IPs have none.
    (twin,) = [f for f in fes if f.internal]
    assert (twin.ip, twin.port, len(twin.active)) == ("172.30.0.11", 30081, 2)
    assert by[("172.30.0.11", 30081)].two_scopes and not twin.two_scopes
    assert not any(f.two_scopes for f in fes if f.port != 30081)
    assert desired_frontends([cluster], slices, CFG)[0].type == "ClusterIP"  # no node IP: none
    contents, _ = program(fes, Ids(), 251, node="node1")
    flags = {
        Backend.unpack(v).ip: Backend.unpack(v).flags
        for v in contents.maps["axo_lb_backend"].values()
    }
    assert flags["10.42.1.2"] & LB_BE_LOCAL and not flags["10.42.2.2"] & LB_BE_LOCAL
    svcs = {SvcKey.unpack(k): SvcValue.unpack(v) for k, v in contents.maps["axo_lb_svc"].items()}
    ext, internal = (svcs[SvcKey("172.30.0.11", 30081, 6, s)] for s in (LB_SCOPE_EXT, LB_SCOPE_INT))
    assert ext.flags & LB_F_TWO_SCOPES and not internal.flags & LB_F_TWO_SCOPES
    assert (ext.count, internal.count) == (1, 2) and ext.svc_id != internal.svc_id
    assert not svcs[SvcKey("172.30.0.11", 30080, 6)].flags & LB_F_TWO_SCOPES
