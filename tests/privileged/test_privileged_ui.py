"""``axoneme ui`` end to end in headless Chromium, against a real lab.

Traffic the test makes must show up in the page: the workloads as map nodes,
the allowed connection as a green edge, a click on the edge narrowing the
flows table to it, a newly denied connection as a red edge and DROPPED rows,
and a lossy link (iptables statistic, as in test_privileged_health) as an
alert. Everything is read from the DOM.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from privileged.cdp import Browser
from privileged.conftest import lab_config, started_lab
from privileged.helpers import (
    apply,
    apply_policies,
    ax,
    namespace,
    pod_manifest,
    wait_for,
    wait_pods,
)
from privileged.scrape import scrape, value

NS = "uit"
WEB_POLICY = {
    "apiVersion": "cilium.io/v2",
    "kind": "CiliumNetworkPolicy",
    "metadata": {"name": "web-from-client", "namespace": NS},
    "spec": {
        "endpointSelector": {"matchLabels": {"app": "web"}},
        "ingress": [
            {
                "fromEndpoints": [{"matchLabels": {"app": "client"}}],
                "toPorts": [{"ports": [{"port": "80", "protocol": "TCP"}]}],
            }
        ],
    },
}
LOSS_RULE = [
    "PREROUTING", "-i", "eth0", "-m", "statistic", "--mode", "random",
    "--probability", "0.5", "-j", "DROP",
]  # fmt: skip


@pytest.fixture(scope="module")
def ui_lab(lab_lock: None) -> Iterator[dict[str, Any]]:
    with started_lab(lab_config(health=True)) as state:
        apply(
            namespace(NS),
            pod_manifest(NS, "web", "node2", {"app": "web"}, [(80, "TCP")]),
            pod_manifest(NS, "client", "node1", {"app": "client"}, []),
            pod_manifest(NS, "other", "node1", {"app": "other"}, []),
        )
        wait_pods(NS, {"web", "client", "other"})
        yield state


@pytest.fixture
def ui_url(ui_lab: dict[str, Any]) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "axoneme.cli.main", "ui", "--listen", "127.0.0.1:0", "-n", NS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Axoneme UI on http://127.0.0.1:"), (line, proc.stderr)
        yield line.split()[-1]
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)  # also closes the pipes
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode in (0, -15), err


def probe(src: str, dst: str) -> str:
    return ax("probe", "--timeout", "1", src, dst, check=False).stdout.split()[0]


def iptables(*args: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", "axn-node2", "iptables", "-t", "raw", *args],
        check=True,
        capture_output=True,
    )


def edge(src: str, dst: str) -> str:
    """JS: the verdict of the map edge src → dst, or null."""
    return (
        f'document.querySelector(\'g.edge[data-src="{src}"][data-dst="{dst}"]\')'
        "?.dataset.verdict ?? null"
    )


ROWS = "[...document.querySelectorAll('#flows tbody tr')].map(r => ({...r.dataset}))"


def check_agent_metrics() -> None:
    """The agents count what the test did: CNI ADDs on node1, policy drops on node2."""
    adds = value(scrape("172.30.0.11"), "axoneme_cni_requests_total", command="ADD",
                 outcome="success")  # fmt: skip
    assert adds is not None and adds >= 2, adds  # client and other
    wait_for(
        lambda: (value(scrape("172.30.0.12"), "axoneme_drop_count_total", reason="POLICY_DENIED")
                 or 0) >= 1,
        15,
        "node2's POLICY_DENIED drop counter",
    )  # fmt: skip


def test_service_map_flows_denials_and_alerts_in_the_browser(ui_url: str) -> None:
    assert probe(f"{NS}/client", f"{NS}/web:80/TCP") == "reachable"

    async def scenario() -> None:
        browser = Browser()
        try:
            await browser.open(ui_url)
            await browser.wait_for("the live stream", "document.getElementById('status')"
                                   ".textContent === 'live'")  # fmt: skip
            nodes = await browser.wait_for(
                "client and web as map nodes",
                "(() => { const ids = [...document.querySelectorAll('g.node')]"
                ".map(n => n.dataset.id); return ids.includes('uit/client') && "
                "ids.includes('uit/web') ? ids : null })()",
            )
            assert "uit/other" not in nodes  # it sent nothing yet
            assert await browser.wait_for("a forwarded edge", edge("uit/client", "uit/web")) in (
                "forwarded",
                "audit",
            )
            label = await browser.evaluate(
                "document.querySelector('g.edge[data-src=\"uit/client\"] text').textContent"
            )
            assert label.startswith("80/TCP") and "✓" in label, label

            # Click-through: the table shows only that edge's flows.
            key = "uit/client|uit/web|80/TCP"
            await browser.evaluate(
                f"document.querySelector('g.edge[data-key=\"{key}\"]')"
                ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
            )
            rows = await browser.wait_for("rows of the edge", ROWS)
            assert rows and all(r["edge"] == key for r in rows), rows
            assert not await browser.evaluate("document.getElementById('selection').hidden")
            await browser.evaluate("document.getElementById('clear-edge').click()")

            # A policy that lets only client in: other's connection is denied, live.
            apply_policies(WEB_POLICY)
            assert probe(f"{NS}/other", f"{NS}/web:80/TCP") == "timeout"
            # Red either way: all dropped, or (egress let out on node1, dropped on node2's
            # ingress) dropped and forwarded observations of the same connection.
            assert await browser.wait_for(
                "a red edge from other", edge("uit/other", "uit/web")
            ) in ("dropped", "mixed")
            label = await browser.evaluate(
                "document.querySelector('g.edge[data-src=\"uit/other\"] text').textContent"
            )
            assert "✗" in label, label
            stroke = await browser.evaluate(
                "getComputedStyle(document.querySelector("
                "'g.edge[data-src=\"uit/other\"] path')).stroke"
            )
            assert stroke == "rgb(211, 47, 47)", stroke
            dropped = await browser.wait_for(
                "a DROPPED row",
                f"{ROWS}.filter(r => r.verdict === 'DROPPED' && r.edge.startsWith('uit/other|'))",
            )
            assert dropped
            reason = await browser.evaluate(
                "[...document.querySelectorAll('#flows tbody tr.verdict-DROPPED td')]"
                ".map(td => td.textContent).join(' ')"
            )
            assert "POLICY_DENIED" in reason
            await asyncio.to_thread(check_agent_metrics)

            # The filter box takes observe's flags; a bad one is refused by name.
            await browser.evaluate(
                "document.getElementById('filter').value = '--verdict NOPE';"
                "document.getElementById('apply').click()"
            )
            error = await browser.wait_for(
                "the filter error", "document.getElementById('filter-error').textContent"
            )
            assert "--verdict" in error
            await browser.evaluate(
                "document.getElementById('filter').value = '--verdict DROPPED';"
                "document.getElementById('apply').click()"
            )
            only = await browser.wait_for(
                "only dropped rows",
                f"(() => {{ const r = {ROWS}; return r.length && "
                "document.getElementById('filter-error').hidden ? r : null })()",
            )
            assert {r["verdict"] for r in only} == {"DROPPED"}, only

            # A lossy link raises an alert in the page.
            iptables("-I", *LOSS_RULE)
            try:
                alert = await browser.wait_for(
                    "a loss alert for node2",
                    "[...document.querySelectorAll('#alerts li.alert.loss')]"
                    ".filter(li => li.dataset.target === 'node2').map(li => li.textContent)",
                    timeout=40,
                )
                assert "loss" in alert[0] and "node2" in alert[0]
            finally:
                iptables("-D", *LOSS_RULE)
        finally:
            await browser.close()
        assert not list(Path("/tmp").glob(f"{browser.profile.name}*"))

    asyncio.run(scenario())
    left = subprocess.run(["pgrep", "-f", "axt-chromium-"], capture_output=True, text=True)
    assert not left.stdout.strip(), f"chromium processes left: {left.stdout}"
