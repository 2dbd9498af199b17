"""The world's router health-checks nodes for LoadBalancer services with
externalTrafficPolicy: Local (lab/worldlb.py), on a 2-node lab.

Without it the world's multipath route for the pool sends about half the flows
to a node without a local backend, which refuses them. With it, the world
gets a ``/32`` for the service's ingress address via only the nodes whose
``healthCheckNodePort`` answers 200: every connection is served, by a local
backend that sees the client's address. The route follows the backends, eTP
Cluster services keep the pool route, a service without a healthy node (or
deleted) loses its ``/32``, and stale routes of the module's protocol go.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from axoneme.lab.topology import LAB_DIR, WORLD_IP, WORLD_NETNS
from axoneme.lab.worldlb import RTPROT_WORLDLB
from privileged import helpers
from privileged.helpers import (
    apply,
    ax,
    http_pod,
    manifest,
    namespace,
    node_ips,
    wait_for,
    wait_pods,
    world_http,
)

pytestmark = [pytest.mark.lab]

NS = "wlb-test"
APP = {"app": "wlb"}
SPORTS = range(43000, 43040)  # 40 flows; the world's multipath hash spreads them
# Other ports for the eTP Cluster service: its flows to web-2 must not share a
# client port with the Local service's (a reused reply tuple is another test's).
CLUSTER_SPORTS = range(43100, 43140)
UNUSED_POOL_IP = "198.18.1.250"  # in LB_IP_POOL, given to no service here


def lb_service(name: str, policy: str) -> dict[str, Any]:
    return helpers.lb_service(NS, name, APP, policy)


def web(name: str, node: str, labels: dict[str, str] = APP) -> dict[str, Any]:
    return http_pod(NS, name, node, labels)


def service_json(name: str) -> dict[str, Any]:
    items = json.loads(ax("get", "svc", "-n", NS, "-o", "json").stdout)["items"]
    return dict(next(s for s in items if s["metadata"]["name"] == name))


def ingress(name: str) -> str:
    def address() -> str:
        found = service_json(name).get("status", {}).get("loadBalancer", {}).get("ingress", [])
        return str(found[0]["ip"]) if found else ""

    return str(wait_for(address, 20, f"a LoadBalancer address for {name}"))


def ip_json(*args: str) -> Any:
    out = subprocess.run(
        ["ip", "-n", WORLD_NETNS, "-j", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out) if out.strip() else []


def world_lb_routes(lab: dict[str, Any]) -> dict[str, set[str]]:
    """The world's routes of the module's protocol: address -> next-hop node names."""
    by_ip = {ip: name for name, ip in node_ips(lab).items()}
    out = {}
    for r in ip_json("route", "show", "table", "main", "proto", str(RTPROT_WORLDLB)):
        hops = r.get("nexthops") or [r]
        out[r["dst"]] = {by_ip.get(h["gateway"], h["gateway"]) for h in hops}
    return out


def entry_node(lab: dict[str, Any], dst: str, sport: int) -> str:
    """The node the world's kernel sends this TCP flow to."""
    got = ip_json(
        "route", "get", dst, "from", WORLD_IP, "ipproto", "tcp", "sport", str(sport), "dport", "80"
    )
    return next(n for n, ip in node_ips(lab).items() if ip == got[0]["gateway"])


def wait_route(lab: dict[str, Any], address: str, nodes: set[str] | None) -> None:
    """Until the world's /32 for ``address`` goes via exactly ``nodes`` (None: no /32)."""

    def there() -> bool:
        return world_lb_routes(lab).get(address) == nodes

    wait_for(there, 20, f"the world's route for {address} via {nodes}")


@pytest.fixture(scope="module")
def deployed(lab: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """web-2 on node2 behind an eTP Local LoadBalancer ("local"), and an eTP
    Cluster one ("cluster") on the same pod; their ingress addresses."""
    apply(
        namespace(NS),
        web("web-2", "node2"),
        lb_service("local", "Local"),
        lb_service("cluster", "Cluster"),
    )
    wait_pods(NS, {"web-2"})
    yield {
        "local": ingress("local"),
        "cluster": ingress("cluster"),
        "health": int(service_json("local")["spec"]["healthCheckNodePort"]),
    }


def test_only_the_node_with_a_backend_is_a_next_hop(
    lab: dict[str, Any], deployed: dict[str, Any]
) -> None:
    address = deployed["local"]
    wait_route(lab, address, {"node2"})
    # These source ports do spread over both nodes on the pool's multipath route...
    assert {entry_node(lab, UNUSED_POOL_IP, s) for s in SPORTS} == {"node1", "node2"}
    # ...but the /32 sends every one of them to node2, where each is served.
    assert {entry_node(lab, address, s) for s in SPORTS} == {"node2"}
    for sport in SPORTS:
        got = world_http(address, 80, bind_port=sport)
        assert got["name"] == "web-2", (sport, got)
        assert got["client"] == f"{WORLD_IP}:{sport}", (sport, got)  # the client's address kept


def test_a_flow_forced_through_node1_is_refused_there(
    lab: dict[str, Any], deployed: dict[str, Any]
) -> None:
    """What the health check spares the world: node1 has no local backend and
    refuses at once. One client port is policy-routed via node1 in the world
    (as by a router that does not check) for the length of the test."""
    address, sport, table = deployed["local"], 43400, "4340"
    wait_route(lab, address, {"node2"})
    world = ["ip", "-n", WORLD_NETNS]
    rule = ["rule", "add", "ipproto", "tcp", "sport", str(sport), "lookup", table]
    subprocess.run([*world, *rule], check=True)
    try:
        via = ["route", "add", f"{address}/32", "via", node_ips(lab)["node1"], "table", table]
        subprocess.run([*world, *via], check=True)
        assert entry_node(lab, address, sport) == "node1"
        with pytest.raises(ConnectionRefusedError):
            world_http(address, 80, bind_port=sport)
    finally:
        subprocess.run([*world, "rule", "del", *rule[2:]], capture_output=True)
        subprocess.run([*world, "route", "flush", "table", table], capture_output=True)
    assert entry_node(lab, address, sport) == "node2"
    assert world_http(address, 80, bind_port=sport + 1)["name"] == "web-2"


def test_lab_status_shows_the_route(lab: dict[str, Any], deployed: dict[str, Any]) -> None:
    address, port = deployed["local"], deployed["health"]
    wait_route(lab, address, {"node2"})
    want = f"world LB: {address} -> node2 ({NS}/local, health check {port})"

    def shown() -> str | None:
        out = ax("lab", "status").stdout
        return out if want in out else None

    wait_for(shown, 10, f"{want!r} in lab status")


def test_cluster_policy_keeps_the_pool_route(lab: dict[str, Any], deployed: dict[str, Any]) -> None:
    wait_route(lab, deployed["local"], {"node2"})
    assert deployed["cluster"] not in world_lb_routes(lab)
    assert ip_json("route", "show", f"{deployed['cluster']}/32") == []
    entries = {entry_node(lab, deployed["cluster"], s) for s in CLUSTER_SPORTS}
    assert entries == {"node1", "node2"}
    for sport in CLUSTER_SPORTS[:8]:  # served from either node (SNAT from node1)
        assert world_http(deployed["cluster"], 80, bind_port=sport)["name"] == "web-2"


def test_a_backend_on_node1_makes_it_a_next_hop(
    lab: dict[str, Any], deployed: dict[str, Any]
) -> None:
    address = deployed["local"]
    apply(web("web-1", "node1"))
    wait_pods(NS, {"web-1"})
    wait_route(lab, address, {"node1", "node2"})
    home = {"node1": "web-1", "node2": "web-2"}
    served = set()
    for sport in SPORTS:
        entry = entry_node(lab, address, sport)
        got = world_http(address, 80, bind_port=sport)
        # eTP Local: the entry node's own backend, the client's address kept.
        assert (got["name"], got["client"]) == (home[entry], f"{WORLD_IP}:{sport}"), (sport, got)
        served.add(got["name"])
    assert served == {"web-1", "web-2"}
    # web-1 leaves the service: node1 fails its check and is dropped again.
    apply(web("web-1", "node1", labels={"app": "elsewhere"}))
    wait_route(lab, address, {"node2"})
    assert {world_http(address, 80, bind_port=s)["name"] for s in SPORTS} == {"web-2"}


def test_no_healthy_node_no_route_and_refused(
    lab: dict[str, Any], deployed: dict[str, Any]
) -> None:
    address = deployed["local"]
    apply(web("web-2", "node2", labels={"app": "elsewhere"}))
    try:
        wait_route(lab, address, None)
        assert {entry_node(lab, address, s) for s in SPORTS} == {"node1", "node2"}  # the pool's
        for sport in (43300, 43301, 43302):  # new client ports: no earlier flow's conntrack
            with pytest.raises(ConnectionRefusedError):  # no backend anywhere: refused at once
                world_http(address, 80, bind_port=sport)
    finally:
        apply(web("web-2", "node2"))
    wait_route(lab, address, {"node2"})


def test_stale_routes_of_the_protocol_are_removed(
    lab: dict[str, Any], deployed: dict[str, Any]
) -> None:
    """As after a supervisor restart: a route of the module's protocol that no
    service wants is deleted; the rest of the world's routes are untouched."""
    wait_route(lab, deployed["local"], {"node2"})
    before = ip_json("route", "show", "table", "main")
    node1 = node_ips(lab)["node1"]
    subprocess.run(
        ["ip", "-n", WORLD_NETNS, "route", "add", f"{UNUSED_POOL_IP}/32", "via", node1,
         "proto", str(RTPROT_WORLDLB)],
        check=True,
    )  # fmt: skip
    try:
        wait_route(lab, UNUSED_POOL_IP, None)
    finally:
        subprocess.run(
            ["ip", "-n", WORLD_NETNS, "route", "del", f"{UNUSED_POOL_IP}/32"], capture_output=True
        )
    assert ip_json("route", "show", "table", "main") == before


def test_deleting_the_service_removes_its_route(
    lab: dict[str, Any], deployed: dict[str, Any]
) -> None:
    address = deployed["local"]
    wait_route(lab, address, {"node2"})
    ax("delete", "-f", "-", stdin=manifest(lb_service("local", "Local")))
    wait_route(lab, address, None)
    assert world_lb_routes(lab) == {}

    def status_says_none() -> bool:
        return "world LB: no LoadBalancer service with externalTrafficPolicy Local" in (
            ax("lab", "status").stdout
        )

    wait_for(status_says_none, 10, "lab status without health-checked services")
    log = (LAB_DIR / "supervisor.log").read_text()
    assert "world LB round failed" not in log, log[-3000:]
