"""Scrape a lab agent's /metrics from inside the lab (the address exists only there)."""

from __future__ import annotations

import socket

from prometheus_client.parser import text_string_to_metric_families

from axoneme.kit.netns import socket_in
from axoneme.lab.topology import AGENT_METRICS_PORT, LAB_NETNS


def scrape(
    ip: str, port: int = AGENT_METRICS_PORT
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``http://IP:PORT/metrics``, keyed by (name, labels)."""
    sock = socket_in(f"/run/netns/{LAB_NETNS}", socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.setblocking(True)
        sock.settimeout(5)
        sock.connect((ip, port))
        sock.sendall(b"GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    assert head.split()[1] == b"200", head
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))
