"""The world outside the cluster, and SCTP, on a 2-node lab.

``axn-world`` sits on the underlay at 172.30.0.254 with the documentation
addresses 198.51.100.10 and 203.0.113.10 on its loopback; nodes route those
prefixes to it and it routes pod CIDRs back. None of it may reach the
machine's own namespace: its routes, addresses and links stay as they were.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from axoneme.lab.topology import WORLD_NETNS
from axoneme.lab.world import read_world_state
from privileged.helpers import apply, ax, namespace, pod_manifest, wait_pods

pytestmark = [pytest.mark.lab]

NS = "outside"


def _root(*args: str) -> list[str]:
    """Lines of an ``ip`` command in the machine's own namespace, minus volatile ones."""
    out = subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout
    return sorted(line for line in out.splitlines() if "expires" not in line)


@dataclass(frozen=True)
class RootView:
    routes4: list[str]
    routes6: list[str]
    rules: list[str]
    addresses: list[str]
    links: list[str]


def _root_view() -> RootView:
    links = [line.split(":")[1].strip().split("@")[0] for line in _root("-o", "link")]
    return RootView(
        _root("-4", "route", "show", "table", "all"),
        _root("-6", "route", "show", "table", "all"),
        _root("rule"),
        _root("-o", "addr"),
        sorted(links),
    )


@pytest.fixture(scope="module")
def root_before(lab_lock: None) -> RootView:
    """The machine's own network view before the lab exists (taken under the lab lock)."""
    return _root_view()


@pytest.fixture(scope="module")
def world(root_before: RootView, lab: dict[str, Any]) -> Iterator[dict[str, str]]:
    """The lab (started after ``root_before``) with pods on both nodes; their IPs by name."""
    ports = [(80, "TCP"), (53, "UDP"), (9000, "SCTP")]
    apply(
        namespace(NS),
        pod_manifest(NS, "near", "node1", {"app": "near"}, ports),
        pod_manifest(NS, "far", "node2", {"app": "far"}, ports),
    )
    pods = wait_pods(NS, {"near", "far"})
    yield {name: p["status"]["podIP"] for name, p in pods.items()}


def _probe(*lines: str) -> list[str]:
    proc = ax("probe", "-f", "-", stdin="\n".join(lines), check=False)
    results = proc.stdout.splitlines()
    assert len(results) == len(lines), proc.stdout + proc.stderr
    return results


def _outcomes(*lines: str) -> list[str]:
    return [line.split()[0] for line in _probe(*lines)]


def test_world_namespace_addresses_and_routes(world: dict[str, str]) -> None:
    def ip_in(ns: str, *args: str) -> str:
        return subprocess.run(
            ["ip", "-n", ns, *args], check=True, capture_output=True, text=True
        ).stdout

    addresses = ip_in(WORLD_NETNS, "-o", "-4", "addr")
    for want in ("198.51.100.10/32", "203.0.113.10/32", "172.30.0.254/24"):
        assert want in addresses, addresses
    routes = ip_in(WORLD_NETNS, "-4", "route")
    assert "10.42.1.0/24 via 172.30.0.11" in routes and "10.42.2.0/24 via 172.30.0.12" in routes
    assert "default" not in routes  # the world reaches nothing but the lab
    for node in ("axn-node1", "axn-node2"):
        node_routes = ip_in(node, "-4", "route")
        assert "198.51.100.0/24 via 172.30.0.254" in node_routes
        assert "203.0.113.0/24 via 172.30.0.254" in node_routes
    state = read_world_state()
    assert state is not None
    assert state["netns"] == WORLD_NETNS and state["workloadPid"]
    os.kill(state["workloadPid"], 0)  # alive


def test_pods_reach_the_world(world: dict[str, str]) -> None:
    assert (
        _outcomes(
            f"{NS}/near 198.51.100.10:80/TCP",
            f"{NS}/near 203.0.113.10:53/UDP",
            f"{NS}/far 198.51.100.10:8080/TCP",
            f"{NS}/far 203.0.113.10:5353/UDP",
            f"{NS}/near world:80/SCTP",
            f"{NS}/far 203.0.113.10:8080/SCTP",
            "node:node1 198.51.100.10:80/TCP",
            f"{NS}/near 198.51.100.10:81/TCP",  # the world's kernel answers RST
            f"{NS}/near 198.51.100.10:81/SCTP",  # the world's workload answers ABORT
        )
        == ["reachable"] * 7 + ["refused"] * 2
    )


def test_world_sees_the_pod_address_without_nat(world: dict[str, str]) -> None:
    curl = ["curl", "-s", "-m", "5", "--noproxy", "*"]
    out = ax("exec", f"{NS}/near", "--", *curl, "http://198.51.100.10/x").stdout
    body = json.loads(out)
    assert (body["pod"], body["node"], body["path"]) == ("world/world", "world", "/x")
    assert body["client"].startswith(world["near"] + ":")


def test_world_reaches_pods_from_its_documentation_address(world: dict[str, str]) -> None:
    results = _probe(
        f"world {NS}/near:80/TCP",
        f"world {NS}/far:80/TCP",
        f"world {NS}/far:53/UDP",
        f"world {NS}/near:9000/SCTP",
        f"world {world['far']}:9000/SCTP",
        f"world {NS}/near:9001/SCTP",
    )
    assert [r.split()[0] for r in results] == ["reachable"] * 5 + ["refused"], results
    assert results[0].split()[1:4] == ["world", "->", f"{NS}/near:80/TCP"]
    # The pod saw the world's documentation address (the probe binds to it).
    curl = ["curl", "-s", "-m", "5", "--noproxy", "*", "--interface", "198.51.100.10"]
    command = ["ip", "netns", "exec", WORLD_NETNS, *curl, f"http://{world['near']}/"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["client"].startswith("198.51.100.10:")


def test_sctp_between_pods_across_nodes(world: dict[str, str]) -> None:
    results = _probe(
        f"{NS}/near {NS}/far:9000/SCTP",
        f"{NS}/far {NS}/near:9000/SCTP",
        f"{NS}/near {world['far']}:9000/SCTP",
        f"{NS}/near {NS}/far:9001/SCTP",
        f"{NS}/near node:node2:9000/SCTP",  # a node has no SCTP: ICMP protocol unreachable
    )
    outcomes = [r.split()[0] for r in results]
    assert outcomes == ["reachable"] * 3 + ["refused"] * 2, results
    assert results[0].split()[-2:] == ["INIT", "ACK"] and results[3].endswith("ABORT")


def test_world_workload_is_restarted(world: dict[str, str]) -> None:
    before = read_world_state()
    assert before is not None
    os.kill(before["workloadPid"], 9)
    deadline = time.monotonic() + 20
    while True:
        now = read_world_state()
        assert now is not None
        if now["workloadPid"] and now["workloadPid"] != before["workloadPid"]:
            break
        assert time.monotonic() < deadline, f"world workload not restarted: {now}"
        time.sleep(0.1)
    assert now["restarts"] == before["restarts"] + 1
    assert _outcomes(f"{NS}/near 198.51.100.10:80/TCP", f"{NS}/near world:80/SCTP") == [
        "reachable",
        "reachable",
    ]


def test_machine_namespace_is_untouched(world: dict[str, str], root_before: RootView) -> None:
    now = _root_view()
    assert now == root_before  # routes, rules, addresses and links exactly as before the lab
    assert not [link for link in now.links if link.startswith(("axn", "lxc"))]
    # And nothing in the lab has a route toward the machine's own networks (no traffic sent:
    # `ip route get` only asks the routing table).
    targets = {line.split()[2] for line in now.routes4 if line.startswith("default via")}
    targets |= {line.split()[3].split("/")[0] for line in now.addresses if " inet " in line}
    targets -= {"127.0.0.1"}
    for ns in (WORLD_NETNS, "axn-node1", "axn-node2", "axn-lab"):
        for target in sorted(targets):
            got = subprocess.run(
                ["ip", "-n", ns, "route", "get", target], capture_output=True, text=True
            )
            assert got.returncode != 0, f"{ns} routes {target}: {got.stdout}"
