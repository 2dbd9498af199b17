"""The per-service frontend table against ``desired_frontends`` over everything."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from axoneme.k8s.service import EndpointSlice, Service, parse_endpointslice, parse_service
from axoneme.loadbalancer.state import BackendAddr, Frontend, LBConfig, desired_frontends
from axoneme.loadbalancer.table import FrontendTable, slice_service

CFG = LBConfig("n1", node_ip="172.30.0.11")
NAMES = ["a", "b", "c", "d"]
IPS = ["10.96.0.1", "10.96.0.2", "10.96.0.3"]  # few: services collide on addresses


def service(name: str, ip: str, external: list[str], node_port: bool, local: bool) -> Service:
    port: dict[str, Any] = {"name": "http", "port": 80}
    spec: dict[str, Any] = {"clusterIP": ip, "ports": [port], "externalIPs": external}
    if node_port:
        port["nodePort"] = 30080
        spec["type"] = "NodePort"
    if local and (node_port or external):  # only for services reachable from outside
        spec["externalTrafficPolicy"] = "Local"
    raw = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "demo"}}
    return parse_service({**raw, "spec": spec})


def endpoint_slice(name: str, svc: str, hosts: list[tuple[int, bool, str]]) -> EndpointSlice:
    return parse_endpointslice(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": "demo",
                "labels": {"kubernetes.io/service-name": svc},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [f"10.42.0.{h}"], "nodeName": node, "conditions": {"ready": ready}}
                for h, ready, node in hosts
            ],
            "ports": [{"name": "http", "port": 8080}],
        }
    )


services = st.builds(
    service,
    st.sampled_from(NAMES),
    st.sampled_from(IPS),
    st.lists(st.sampled_from(["198.18.0.1", "198.18.0.2"]), max_size=1),
    st.booleans(),
    st.booleans(),
)
slices = st.builds(
    endpoint_slice,
    st.sampled_from(["s1", "s2", "s3"]),
    st.sampled_from(NAMES),
    st.lists(
        st.tuples(st.integers(1, 5), st.booleans(), st.sampled_from(["n1", "n2"])), max_size=3
    ),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("svc"), services),
        st.tuples(st.just("del-svc"), st.sampled_from(NAMES)),
        st.tuples(st.just("slice"), slices),
        st.tuples(st.just("del-slice"), st.sampled_from(["s1", "s2", "s3"])),
    ),
    max_size=30,
)


def by_key(fes: list[Frontend]) -> dict[Any, Frontend]:
    return {fe.key: fe for fe in fes}


@settings(max_examples=200, deadline=None)
@given(ops)
def test_changes_per_service_match_the_full_computation(steps: list[tuple[str, Any]]) -> None:
    svcs: dict[str, Service] = {}
    slcs: dict[str, EndpointSlice] = {}
    table = FrontendTable(CFG)
    table.reset([], [])
    for op, arg in steps:
        before = by_key(table.frontends())
        dirty = set()
        if op == "svc":
            svcs[arg.name] = arg
            dirty.add(arg.ref)
        elif op == "del-svc":
            svcs.pop(arg, None)
            dirty.add(f"demo/{arg}")
        else:
            name = arg.name if op == "slice" else arg
            old = slcs.pop(name, None)
            if old is not None:
                dirty.add(slice_service(old))
            if op == "slice":
                slcs[name] = arg
                dirty.add(slice_service(arg))
        # The agent's path: the services that changed, each with its own slices.
        changes: dict[Any, Frontend | None] = {}
        for ref in sorted(dirty):
            svc = next((s for s in svcs.values() if s.ref == ref), None)
            own = [s for s in slcs.values() if slice_service(s) == ref]
            changes.update(table.set_service(ref, svc, own))
        want = by_key(desired_frontends(svcs.values(), slcs.values(), CFG))
        assert by_key(table.frontends()) == want
        # Exactly what changed is reported, so the writer touches nothing else.
        expected = {
            k: want.get(k) for k in before.keys() | want.keys() if before.get(k) != want.get(k)
        }
        assert {k: v for k, v in changes.items() if before.get(k) != v} == expected
        # A resync from scratch agrees.
        assert by_key(FrontendTable(CFG).reset(svcs.values(), slcs.values())) == want


def test_the_first_service_by_name_keeps_a_shared_address_and_the_next_takes_over() -> None:
    table = FrontendTable(CFG)
    b = service("b", "10.96.0.1", [], False, False)
    a = service("a", "10.96.0.1", [], False, False)
    ready = endpoint_slice("s1", "a", [(1, True, "n1")])
    table.set_service(b.ref, b, [])
    changes = table.set_service(a.ref, a, [ready])
    (fe,) = changes.values()
    assert fe is not None and fe.service == "demo/a"
    assert fe.active == (BackendAddr("10.42.0.1", 8080, "TCP", False, "n1"),)
    changes = table.set_service(a.ref, None, [])
    (fe,) = changes.values()
    assert fe is not None and fe.service == "demo/b" and fe.backends == ()
    assert table.set_service(b.ref, None, []) == {fe.key: None}
    assert table.frontends() == []
