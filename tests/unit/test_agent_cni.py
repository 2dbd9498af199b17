"""The agent's own check of forwarded CNI requests (its API is an entry point too)."""

from __future__ import annotations

from typing import Any

import pytest

from axoneme.agent.cni import CNIRequestError, add_result, parse_request
from axoneme.endpoint.model import Endpoint

GOOD: dict[str, Any] = {
    "containerId": "abc123",
    "netns": "/run/netns/p1",
    "ifname": "eth0",
    "args": {"K8S_POD_NAMESPACE": "demo", "K8S_POD_NAME": "web"},
    "config": {"cniVersion": "1.0.0", "name": "axoneme", "type": "axoneme-cni"},
}


def test_good_request() -> None:
    req = parse_request("ADD", GOOD)
    assert (req.pod_namespace, req.pod_name, req.cni_version) == ("demo", "web", "1.0.0")


def test_del_may_have_no_netns() -> None:
    assert parse_request("DEL", {**GOOD, "netns": ""}).netns == ""


@pytest.mark.parametrize(
    ("command", "body", "needle"),
    [
        ("FOO", GOOD, "command"),
        ("ADD", [], "JSON object"),
        ("ADD", {**GOOD, "containerId": ""}, "containerId"),
        ("ADD", {**GOOD, "containerId": "a/b"}, "containerId"),
        ("ADD", {**GOOD, "ifname": "x" * 16}, "ifname"),
        ("ADD", {**GOOD, "ifname": "a b"}, "ifname"),
        ("ADD", {**GOOD, "netns": ""}, "netns"),
        ("ADD", {**GOOD, "netns": "relative/path"}, "netns"),
        ("ADD", {**GOOD, "args": {"a": 1}}, "args"),
        ("ADD", {**GOOD, "config": "x"}, "config"),
    ],
)
def test_bad_requests_name_the_field(command: str, body: Any, needle: str) -> None:
    with pytest.raises(CNIRequestError) as exc:
        parse_request(command, body)
    assert needle in exc.value.msg


def test_add_result_shape() -> None:
    req = parse_request("ADD", GOOD)
    ep = Endpoint(
        1,
        "abc123",
        "eth0",
        "/run/netns/p1",
        "lxc0123456789ab",
        "10.42.1.2",
        host_mac="02:00:00:00:00:01",
        pod_mac="02:00:00:00:00:02",
    )
    result = add_result(req, ep, "10.42.1.1")
    assert result["cniVersion"] == "1.0.0"
    assert result["ips"] == [{"address": "10.42.1.2/32", "gateway": "10.42.1.1", "interface": 1}]
    assert result["interfaces"][1] == {
        "name": "eth0",
        "mac": "02:00:00:00:00:02",
        "sandbox": "/run/netns/p1",
    }
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.42.1.1"}]
