"""A 2-node lab end to end: pods through CNI, connectivity, agent crash, bad input.

One lab for the module (the ``lab`` fixture); each test uses its own namespace.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from axoneme.api.client import AgentAPIError, AgentClient
from axoneme.kit.netns import socket_in
from axoneme.lab.control import read_state
from axoneme.lab.topology import cni_bin_dir, pod_netns
from privileged.helpers import ax, manifest, namespace, pod_manifest, wait_for, wait_pods

pytestmark = [pytest.mark.lab]


def deploy(ns: str, pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ax("apply", "-f", "-", stdin=manifest(namespace(ns), *pods))
    return wait_pods(ns, {p["metadata"]["name"] for p in pods})


def agent(node: str) -> AgentClient:
    return AgentClient(Path(f"/run/axoneme-lab/nodes/{node}/agent.sock"), timeout=10)


def netns_of(pod: dict[str, Any]) -> str:
    m = pod["metadata"]
    return f"/run/netns/{pod_netns(m['namespace'], m['name'], m['uid'])}"


def test_lab_status_nodes_and_store(lab: dict[str, Any]) -> None:
    out = ax("lab", "status").stdout
    assert "node1" in out and "node2" in out and "store: Ok etcd" in out
    nodes = json.loads(ax("get", "nodes", "-o", "json").stdout)
    assert nodes["kind"] == "List"
    assert {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes["items"]} == {
        "node1": "10.42.1.0/24",
        "node2": "10.42.2.0/24",
    }
    assert "default" in ax("get", "namespaces").stdout


def test_pods_talk_within_and_across_nodes(lab: dict[str, Any]) -> None:
    ports = [(8080, "TCP"), (5353, "UDP")]
    pods = deploy(
        "conn",
        [
            pod_manifest("conn", "a1", "node1", {"app": "a"}, ports),
            pod_manifest("conn", "a2", "node1", {"app": "a"}, ports),
            pod_manifest("conn", "b1", "node2", {"app": "b"}, ports),
        ],
    )
    ips = {name: p["status"]["podIP"] for name, p in pods.items()}
    assert ips["a1"].startswith("10.42.1.") and ips["b1"].startswith("10.42.2.")
    assert pods["b1"]["spec"]["nodeName"] == "node2"
    assert pods["b1"]["status"]["hostIP"] == "172.30.0.12"
    lines = [
        "conn/a1 conn/a2:8080/TCP",
        "conn/a1 conn/b1:8080/TCP",
        "conn/b1 conn/a1:5353/UDP",
        "conn/a1 node:node1:22/TCP",
        "node:node2 conn/a1:8080/TCP",
        "conn/b1 node:node1:22/TCP",
        f"conn/a1 {ips['b1']}:8080/TCP",
        "conn/a1 conn/b1:9999/TCP",
    ]
    proc = ax("probe", "-f", "-", stdin="\n".join(lines), check=False)
    outcomes = [line.split()[0] for line in proc.stdout.splitlines()]
    # Reaching a node port with no listener is answered with a reset: "refused", not a timeout.
    assert outcomes == [
        "reachable",
        "reachable",
        "reachable",
        "refused",
        "reachable",
        "refused",
        "reachable",
        "refused",
    ], proc.stdout
    assert proc.returncode == 1  # the worst outcome was "refused"

    # HTTP across nodes: the server names itself, its node, and the client it saw.
    out = ax("exec", "conn/a1", "--", "curl", "-s", f"http://{ips['b1']}:8080/x?y=1").stdout
    body = json.loads(out)
    assert body["pod"] == "conn/b1" and body["node"] == "node2"
    assert body["path"] == "/x?y=1" and body["client"].startswith(ips["a1"] + ":")


def test_probe_matrix_of_hundreds_takes_seconds(lab: dict[str, Any]) -> None:
    deploy(
        "matrix",
        [pod_manifest("matrix", f"m{i}", f"node{1 + i % 2}", {}, [(80, "TCP")]) for i in range(4)],
    )
    lines = [f"matrix/m{i} matrix/m{j}:80/TCP" for i in range(4) for j in range(4)] * 20
    started = time.monotonic()
    proc = ax("probe", "-f", "-", stdin="\n".join(lines))
    elapsed = time.monotonic() - started
    results = proc.stdout.splitlines()
    assert len(results) == 320 and all(r.startswith("reachable") for r in results)
    assert results[5].split()[1:4] == ["matrix/m1", "->", "matrix/m1:80/TCP"]  # input order
    assert elapsed < 20, f"320 probes took {elapsed:.1f}s"


def test_agent_kill9_keeps_connections_and_addresses(lab: dict[str, Any]) -> None:
    pods = deploy(
        "crash",
        [
            pod_manifest("crash", "srv", "node1", {}, [(7000, "TCP")]),
            pod_manifest("crash", "cli", "node1", {}, []),
        ],
    )
    before = {e["ipv4"]: e["id"] for e in agent("node1").get("/v1/endpoints")}
    conn = socket_in(netns_of(pods["cli"]), socket.AF_INET, socket.SOCK_STREAM)
    conn.setblocking(True)
    conn.settimeout(5)
    conn.connect((pods["srv"]["status"]["podIP"], 7000))
    try:
        conn.sendall(b"before")
        assert conn.recv(100) == b"before"
        node = next(n for n in read_state()["nodes"] if n["name"] == "node1")  # type: ignore[index]
        os.kill(node["agentPid"], signal.SIGKILL)
        # While the agent is down, the established connection keeps working.
        conn.sendall(b"during")
        assert conn.recv(100) == b"during"

        def restarted() -> bool:
            state = read_state() or {}
            n1 = next(n for n in state.get("nodes", []) if n["name"] == "node1")
            return bool(
                n1["agentRestarts"] >= node["agentRestarts"] + 1
                and n1["agentPid"] != node["agentPid"]
            )

        wait_for(restarted, 20, "the supervisor to restart the agent")
        wait_for(lambda: _healthy("node1"), 20, "the restarted agent to serve")
        conn.sendall(b"after")
        assert conn.recv(100) == b"after"
    finally:
        conn.close()
    after = {e["ipv4"]: e["id"] for e in agent("node1").get("/v1/endpoints")}
    assert after == before  # same endpoints, same addresses, same IDs
    # A new pod gets a fresh address, not one the restored pods hold.
    new = deploy("crash", [pod_manifest("crash", "late", "node1", {}, [])])
    assert new["late"]["status"]["podIP"] not in before


def _healthy(node: str) -> bool:
    try:
        agent(node).get("/v1/healthz")
        return True
    except Exception:
        return False


def _run_cni(env: dict[str, str], stdin: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [str(cni_bin_dir() / "axoneme-cni")],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def _node_links(node: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-n", f"axn-{node}", "-o", "link"], capture_output=True, text=True, check=True
    ).stdout
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())


@pytest.fixture
def scratch_netns() -> Any:
    name = f"axt-cni-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_cni_plugin_against_the_real_agent(lab: dict[str, Any], scratch_netns: str) -> None:
    config = json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "axoneme",
            "type": "axoneme-cni",
            "agentSocket": "/run/axoneme-lab/nodes/node2/agent.sock",
        }
    )
    base = {
        "PATH": "/usr/bin:/bin",
        "CNI_CONTAINERID": "t-cni-1",
        "CNI_NETNS": scratch_netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(cni_bin_dir()),
    }
    status0 = agent("node2").get("/v1/status")
    links0 = _node_links("node2")

    bad_inputs: list[tuple[dict[str, str], str, int, str]] = [
        (
            {**base, "CNI_COMMAND": "ADD", "CNI_NETNS": "/run/netns/does-not-exist"},
            config,
            3,
            "CNI_NETNS",
        ),
        (
            {k: v for k, v in {**base, "CNI_COMMAND": "ADD"}.items() if k != "CNI_CONTAINERID"},
            config,
            4,
            "CNI_CONTAINERID",
        ),
        (
            {k: v for k, v in {**base, "CNI_COMMAND": "ADD"}.items() if k != "CNI_IFNAME"},
            config,
            4,
            "CNI_IFNAME",
        ),
        ({**base, "CNI_COMMAND": "ADD"}, "{not json", 6, ""),
        ({**base, "CNI_COMMAND": "ADD"}, config.replace("1.0.0", "9.9.9"), 1, "cniVersion"),
        ({**base, "CNI_COMMAND": "BOGUS"}, config, 4, "CNI_COMMAND"),
        ({**base, "CNI_COMMAND": "ADD", "CNI_ARGS": "novalue"}, config, 4, "CNI_ARGS"),
    ]
    for env, stdin, code, field in bad_inputs:
        rc, err = _run_cni(env, stdin)
        assert rc == 1 and err["code"] == code, (env, err)
        assert field in err["msg"] + err.get("details", ""), err
    # Nothing changed: no address, no endpoint, no device.
    assert agent("node2").get("/v1/status")["ipam"] == status0["ipam"]
    assert _node_links("node2") == links0

    rc, result = _run_cni({**base, "CNI_COMMAND": "ADD"}, config)
    assert rc == 0, result
    assert result["cniVersion"] == "1.0.0"
    assert result["ips"][0]["address"].startswith("10.42.2.")
    assert result["interfaces"][1] == {
        **result["interfaces"][1],
        "name": "eth0",
        "sandbox": scratch_netns,
    }
    assert _run_cni({**base, "CNI_COMMAND": "CHECK"}, config)[0] == 0
    for _ in range(2):  # DEL is idempotent
        assert _run_cni({**base, "CNI_COMMAND": "DEL"}, config) == (0, {})
    assert _run_cni(
        {**base, "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "never-added", "CNI_NETNS": ""}, config
    ) == (0, {})
    assert agent("node2").get("/v1/status")["ipam"] == status0["ipam"]
    assert _node_links("node2") == links0


def test_agent_api_rejects_bad_requests(lab: dict[str, Any]) -> None:
    client = agent("node1")
    with pytest.raises(AgentAPIError) as exc:
        client.request("POST", "/v1/cni/add", {"containerId": "x"})
    assert exc.value.status == 400 and "ifname" in exc.value.body["msg"]
    with pytest.raises(AgentAPIError) as exc:
        client.request("POST", "/v1/cni/frobnicate", {})
    assert "frobnicate" in exc.value.body["msg"].lower()
    with pytest.raises(AgentAPIError) as exc:
        client.get("/v1/nothing-here")
    assert exc.value.status == 404
    mode = os.stat("/run/axoneme-lab/nodes/node1/agent.sock").st_mode & 0o777
    assert mode == 0o600


def test_bad_manifests_change_nothing(lab: dict[str, Any], tmp_path: Path) -> None:
    deploy("bad", [pod_manifest("bad", "keep", "node1", {"v": "1"}, [])])
    before = ax("get", "pods", "-n", "bad", "-o", "json").stdout
    half_bad = manifest(
        pod_manifest("bad", "new-good", "node1", {}, []),
        {**pod_manifest("bad", "new-bad", "node1", {}, []), "spec": {}},
    )
    proc = ax("apply", "-f", "-", stdin=half_bad, check=False)
    assert proc.returncode == 1 and "spec.containers" in proc.stderr
    proc = ax(
        "apply", "-f", "-", stdin=manifest(pod_manifest("nope", "p", "node1", {}, [])), check=False
    )
    assert proc.returncode == 1 and "namespace 'nope' not found" in proc.stderr
    changed = pod_manifest("bad", "keep", "node2", {"v": "1"}, [])
    proc = ax("apply", "-f", "-", stdin=manifest(changed), check=False)
    assert proc.returncode == 1 and "spec.nodeName" in proc.stderr
    (tmp_path / "x.yaml").write_text("kind: [")
    proc = ax("apply", "-f", str(tmp_path / "x.yaml"), check=False)
    assert proc.returncode == 1 and "x.yaml" in proc.stderr
    proc = ax("get", "pods", "-n", "bad", "-o", "json")
    assert json.loads(proc.stdout)["items"] == json.loads(before)["items"]
    for args in (
        ["get", "widgets"],
        ["get", "pods", "-o", "xml"],
        ["probe", "a", "b"],
        ["lab", "up", "--nodes", "0"],
        ["frob"],
    ):
        proc = ax(*args, check=False)
        assert proc.returncode != 0 and proc.stderr.strip(), args


def test_label_update_and_delete(lab: dict[str, Any]) -> None:
    pods = deploy("upd", [pod_manifest("upd", "p", "node2", {"v": "1"}, [])])
    ip = pods["p"]["status"]["podIP"]
    out = ax(
        "apply", "-f", "-", stdin=manifest(pod_manifest("upd", "p", "node2", {"v": "2"}, []))
    ).stdout
    assert "pod/p configured" in out
    pods = wait_pods("upd", {"p"})
    assert pods["p"]["metadata"]["labels"] == {"v": "2"}
    assert pods["p"]["status"]["podIP"] == ip  # a label change does not recreate the pod
    ax("delete", "-f", "-", stdin=manifest(namespace("upd")))
    wait_for(
        lambda: not any(e["namespace"] == "upd" for e in agent("node2").get("/v1/endpoints")),
        20,
        "the pod's endpoint to be deleted",
    )
