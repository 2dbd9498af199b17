"""Connectivity-test scenarios as data: selection by --test, expectations, resolution,
and that every manifest is one the store and the policy parser accept (pure, no root)."""

from __future__ import annotations

import copy
import re

import pytest

from axoneme.connectivity import scenarios as sc
from axoneme.connectivity.scenarios import (
    DROPPED,
    FEATURE_MISSING,
    NAMESPACE,
    NODEPORT,
    NODEPORT_MISSING,
    OTHER_NODE,
    REACHABLE,
    SAME_NODE,
    SCENARIOS,
    THROUGH,
    Probe,
    Scenario,
    SelectionError,
    describe_want,
    expected,
    mismatches,
    probe_spec,
    resolve,
    select,
    workload_manifests,
)
from axoneme.k8s.objects import validate
from axoneme.policy.parse import parse_policy, policy_warnings
from axoneme.probe.spec import ProbeSpec, parse_probe_line

NODES = {SAME_NODE: "node1", OTHER_NODE: "node2"}
SERVICE_IPS = {"echo-same-node": "10.96.0.10", "echo-other-node": "10.96.0.11"}
NAMES = [s.name for s in SCENARIOS]


def _scenario(name: str) -> Scenario:
    return Scenario(name, (Probe("client", "echo-same-node", 8080, "TCP", REACHABLE),))


# ---- the catalogue ------------------------------------------------------------------


def test_names_are_unique_and_shaped_for_regexes() -> None:
    assert len(NAMES) == len(set(NAMES))
    for name in NAMES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name


def test_every_family_of_the_issue_is_present() -> None:
    for name in (
        "pod-to-pod-same-node",
        "pod-to-pod-other-node",
        "pod-to-service-clusterip-same-node",
        "pod-to-service-clusterip-other-node",
        "pod-to-service-nodeport",
        "world-to-service-nodeport",
        "pod-to-host",
        "pod-to-world",
        "allow-all",
        "all-ingress-deny",
        "all-egress-deny",
        "client-egress-only-to-echo",
        "echo-ingress-from-other-client",
        "to-entities-world",
        "to-entities-host",
        "to-cidr-external",
        "echo-ingress-from-other-client-deny",
        "client-egress-to-echo-deny",
    ):
        assert name in NAMES


def test_only_nodeport_scenarios_need_a_feature_and_none_is_skipped_outright() -> None:
    assert [s.name for s in SCENARIOS if s.skip is not None] == []
    needing = {s.name: s.requires for s in SCENARIOS if s.requires}
    assert needing == {
        "pod-to-service-nodeport": {NODEPORT},
        "world-to-service-nodeport": {NODEPORT},
    }
    assert FEATURE_MISSING[NODEPORT] == NODEPORT_MISSING and "NodePort" in NODEPORT_MISSING


def test_clusterip_scenarios_probe_the_services_from_both_nodes() -> None:
    by_name = {s.name: s for s in SCENARIOS}
    same = by_name["pod-to-service-clusterip-same-node"]
    other = by_name["pod-to-service-clusterip-other-node"]
    assert {p.dst for p in same.probes} == {"service:echo-same-node"}
    assert {p.dst for p in other.probes} == {"service:echo-other-node", "service:echo-same-node"}
    assert {p.proto for p in same.probes} == {"TCP", "UDP"}
    assert "echo-other-node" in {p.src for p in other.probes}  # a client on the other node
    assert all(p.want == REACHABLE for p in same.probes + other.probes)


def test_every_scenario_has_probes_with_expectations() -> None:
    for scenario in SCENARIOS:
        assert scenario.probes, scenario.name
        for probe in scenario.probes:
            assert probe.want and probe.want <= {"reachable", "refused", "timeout"}


def test_policy_scenarios_expect_drops_and_no_policy_scenarios_none() -> None:
    """Every policy but allow-all must drop something, or the probes cannot tell it from
    no policy; and with no policy nothing may be dropped."""
    for scenario in SCENARIOS:
        wants = {p.want for p in scenario.probes}
        if scenario.policies and scenario.name != "allow-all":
            assert DROPPED in wants, scenario.name
        else:
            assert DROPPED not in wants, scenario.name
    selective = [s for s in SCENARIOS if s.policies and len({p.want for p in s.probes}) > 1]
    assert len(selective) >= len([s for s in SCENARIOS if s.policies]) - 2


def test_nothing_listens_on_a_node_so_node_probes_never_demand_reachable() -> None:
    for scenario in SCENARIOS:
        if scenario.requires:
            continue  # a NodePort answers: the Service's backend listens
        for probe in scenario.probes:
            if probe.dst in (SAME_NODE, OTHER_NODE):
                assert probe.want in (THROUGH, DROPPED), (scenario.name, probe)


def test_runnable_probes_resolve_to_valid_probe_lines() -> None:
    for scenario in SCENARIOS:
        if scenario.skip is not None:
            continue
        for probe in scenario.probes:
            spec = probe_spec(probe, NODES, SERVICE_IPS)
            assert parse_probe_line(str(spec)) == spec


def test_policies_are_valid_enforced_and_stay_in_the_test_namespace() -> None:
    for scenario in SCENARIOS:
        names = [p["metadata"]["name"] for p in scenario.policies]
        assert len(names) == len(set(names)), scenario.name
        for policy in scenario.policies:
            raw = copy.deepcopy(dict(policy))
            assert raw["kind"] in ("NetworkPolicy", "CiliumNetworkPolicy")
            assert raw["metadata"]["namespace"] == NAMESPACE
            validate(raw)
            parsed = parse_policy(raw)
            assert policy_warnings(parsed) == (), scenario.name


def test_workload_manifests_place_clients_and_echoes_like_cilium() -> None:
    objects = [validate(copy.deepcopy(o)) for o in workload_manifests(NODES)]
    assert objects[0]["kind"] == "Namespace" and objects[0]["metadata"]["name"] == NAMESPACE
    pods = {o["metadata"]["name"]: o for o in objects[1:] if o["kind"] == "Pod"}
    assert {n: p["spec"]["nodeName"] for n, p in pods.items()} == {
        "client": "node1",
        "client2": "node1",
        "echo-same-node": "node1",
        "echo-other-node": "node2",
    }
    assert pods["client2"]["metadata"]["labels"]["other"] == "client"
    ports = pods["echo-other-node"]["spec"]["containers"][0]["ports"]
    assert {(p["containerPort"], p["protocol"]) for p in ports} == {(8080, "TCP"), (8080, "UDP")}
    assert all(p["metadata"]["namespace"] == NAMESPACE for p in pods.values())


# ---- resolution -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "resolved"),
    [
        ("client", f"{NAMESPACE}/client"),
        ("echo-other-node", f"{NAMESPACE}/echo-other-node"),
        (SAME_NODE, "node:node1"),
        (OTHER_NODE, "node:node2"),
        ("world", "world"),
        ("198.51.100.10", "198.51.100.10"),
    ],
)
def test_resolve(ref: str, resolved: str) -> None:
    assert resolve(ref, NODES) == resolved


def test_services_resolve_to_their_cluster_ip() -> None:
    assert resolve("service:echo-other-node", NODES, SERVICE_IPS) == "10.96.0.11"
    with pytest.raises(ValueError, match="no ClusterIP known for Service"):
        resolve("service:echo-same-node", NODES)
    with pytest.raises(ValueError, match="no ClusterIP known for Service"):
        resolve("service:nope", NODES, SERVICE_IPS)


def test_a_service_per_echo_selects_it_on_its_ports() -> None:
    objects = [validate(copy.deepcopy(o)) for o in workload_manifests(NODES)]
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    pods = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Pod"}
    assert set(services) == {"echo-same-node", "echo-other-node"}
    for name, svc in services.items():
        assert svc["metadata"]["namespace"] == NAMESPACE
        selector = svc["spec"]["selector"]
        chosen = [n for n, p in pods.items() if selector.items() <= p["metadata"]["labels"].items()]
        assert chosen == [name]
        assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {
            (8080, "TCP"),
            (8080, "UDP"),
        }
    same = services["echo-same-node"]["spec"]
    assert same["type"] == "NodePort"
    assert [p.get("nodePort") for p in same["ports"] if p["protocol"] == "TCP"] == [31080]


def test_probe_spec() -> None:
    probe = Probe("world", OTHER_NODE, 80, "UDP", DROPPED)
    assert probe_spec(probe, NODES) == ProbeSpec("world", "node:node2", 80, "UDP")


# ---- selection --------------------------------------------------------------------------

CATALOGUE = [
    _scenario(n) for n in ("pod-to-pod-same-node", "pod-to-world", "allow-all", "all-ingress-deny")
]


def _names(patterns: list[str]) -> list[str]:
    return [s.name for s in select(CATALOGUE, patterns)]


def test_no_pattern_selects_everything_in_order() -> None:
    assert _names([]) == [s.name for s in CATALOGUE]


def test_pattern_is_a_search_not_a_full_match() -> None:
    assert _names(["pod-to-pod"]) == ["pod-to-pod-same-node"]
    assert _names(["pod"]) == ["pod-to-pod-same-node", "pod-to-world"]
    assert _names(["deny"]) == ["all-ingress-deny"]
    assert _names(["^all"]) == ["allow-all", "all-ingress-deny"]


def test_patterns_are_ored_and_bang_excludes() -> None:
    assert _names(["pod-to", "deny$"]) == [
        "pod-to-pod-same-node",
        "pod-to-world",
        "all-ingress-deny",
    ]
    assert _names(["!deny"]) == ["pod-to-pod-same-node", "pod-to-world", "allow-all"]
    assert _names(["^all", "!deny"]) == ["allow-all"]


def test_bad_regex_names_the_option() -> None:
    with pytest.raises(SelectionError, match=r"^--test: '\(' is not a valid regular expression"):
        select(CATALOGUE, ["("])
    with pytest.raises(SelectionError, match=r"^--test: '!\[' is not a valid"):
        select(CATALOGUE, ["!["])


def test_a_selection_of_nothing_is_an_error() -> None:
    with pytest.raises(SelectionError, match="--test: 'nope' selects no scenario"):
        select(CATALOGUE, ["nope"])


def test_selection_of_the_real_catalogue() -> None:
    assert [s.name for s in select(SCENARIOS, ["!service"])] == [
        n for n in NAMES if "service" not in n
    ]
    assert all(s.requires for s in select(SCENARIOS, ["nodeport"]))


# ---- expectations -----------------------------------------------------------------------


def test_expected() -> None:
    probe = Probe("client", SAME_NODE, 80, "TCP", THROUGH)
    assert expected(probe, "refused") and expected(probe, "reachable")
    assert not expected(probe, "timeout")
    assert not expected(Probe("client", "echo-same-node", 8080, "TCP", DROPPED), "reachable")


def test_describe_want_is_ordered() -> None:
    assert describe_want(frozenset({"refused", "reachable"})) == "reachable or refused"
    assert describe_want(DROPPED) == "timeout"


def test_mismatches_name_each_wrong_probe() -> None:
    probes = [
        Probe("client", "echo-other-node", 8080, "TCP", REACHABLE),
        Probe("client", "echo-same-node", 8080, "UDP", DROPPED),
        Probe("client", SAME_NODE, 80, "TCP", THROUGH),
    ]
    assert mismatches(probes, ["timeout", "timeout", "refused"]) == [
        "client -> echo-other-node:8080/TCP: got timeout, want reachable"
    ]
    assert mismatches(probes, ["reachable", "reachable", "timeout"], ["ok", "echoed", ""]) == [
        "client -> echo-same-node:8080/UDP: got reachable, want timeout (echoed)",
        "client -> node:same:80/TCP: got timeout, want reachable or refused",
    ]
    assert mismatches(probes, ["reachable", "timeout", "refused"]) == []
    assert mismatches(probes, ["reachable", "timeout", "timeout"], nodes=NODES) == [
        "client -> node:node1:80/TCP: got timeout, want reachable or refused"
    ]


def test_describe_names_nodes_when_told() -> None:
    probe = Probe(OTHER_NODE, "echo-same-node", 8080, "TCP", REACHABLE)
    assert probe.describe() == "node:other -> echo-same-node:8080/TCP"
    assert probe.describe(NODES) == "node:node2 -> echo-same-node:8080/TCP"


def test_mismatches_refuses_misaligned_input() -> None:
    with pytest.raises(ValueError):
        mismatches([Probe("a", "b", 1, "TCP", REACHABLE)], [])


def test_module_constants_agree_with_the_lab() -> None:
    assert sc.WORLD_A == "198.51.100.10" and sc.WORLD_B == "203.0.113.10"
    assert NAMESPACE == "axoneme-connectivity"
