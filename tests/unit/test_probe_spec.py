"""Probe line parsing and result formatting (pure, no root)."""

from __future__ import annotations

import re

import pytest

from axoneme.probe import run, spec
from axoneme.probe.spec import ProbeSpec, ProbeSpecError


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("demo/a demo/b:80/TCP", ProbeSpec("demo/a", "demo/b", 80, "TCP")),
        ("demo/a demo/b:53/udp", ProbeSpec("demo/a", "demo/b", 53, "UDP")),
        ("  demo/a\t10.0.0.7:65535/Tcp ", ProbeSpec("demo/a", "10.0.0.7", 65535, "TCP")),
        ("node:n1 node:n2:1/UDP", ProbeSpec("node:n1", "node:n2", 1, "UDP")),
        ("kube-system/dns-1.x node:worker-0:8080/TCP", None),
    ],
)
def test_parse_valid_lines(line: str, expected: ProbeSpec | None) -> None:
    parsed = spec.parse_probe_line(line)
    if expected is not None:
        assert parsed == expected
    # The canonical form round-trips.
    assert spec.parse_probe_line(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("demo/a demo/b:70000/TCP", "port: 70000 is not in 1..65535"),
        ("demo/a demo/b:0/TCP", "port: 0 is not in 1..65535"),
        ("demo/a demo/b:http/TCP", "port: 'http' is not a number"),
        ("demo/a demo/b:-1/TCP", "port: '-1' is not a number"),
        ("demo/a demo/b:80/ICMP", "proto: 'ICMP' is not TCP, UDP or SCTP"),
        ("demo/a demo/b:80", "proto: '80' lacks '/TCP' or '/UDP'"),
        ("demo/a demo/b", "dst: 'demo/b' lacks ':PORT/PROTO'"),
        ("demo/a :80/TCP", "dst: ':80/TCP' lacks ':PORT/PROTO'"),
        ("demo/a", "expected 'SRC DST:PORT/PROTO', got 1 field(s)"),
        ("demo/a demo/b:80/TCP extra", "expected 'SRC DST:PORT/PROTO', got 3 field(s)"),
        ("", "expected 'SRC DST:PORT/PROTO', got 0 field(s)"),
        ("10.0.0.1 demo/b:80/TCP", "src: '10.0.0.1' is not NS/POD or node:NAME"),
        ("Demo/a demo/b:80/TCP", "src: 'Demo' is not a valid namespace"),
        ("demo/a demo/B_b:80/TCP", "dst: 'B_b' is not a valid pod name"),
        ("demo/ demo/b:80/TCP", "src: '' is not a valid pod name"),
        ("node: demo/b:80/TCP", "src: '' is not a valid node name"),
        ("demo/a 10.0.0.256:80/TCP", "dst: '10.0.0.256' is not NS/POD, node:NAME or an IPv4"),
        ("demo/a fe80::1:80/TCP", "dst: 'fe80::1' is not NS/POD, node:NAME or an IPv4"),
    ],
)
def test_parse_errors_name_the_part(line: str, message: str) -> None:
    with pytest.raises(ProbeSpecError, match="^" + re.escape(message)):
        spec.parse_probe_line(line)


def test_endpoint_kind() -> None:
    assert spec.endpoint_kind("demo/a") == "pod"
    assert spec.endpoint_kind("node:n1") == "node"
    assert spec.endpoint_kind("10.1.2.3") == "ip"


def test_parse_file_skips_blanks_and_comments() -> None:
    text = "# probes\n\ndemo/a demo/b:80/TCP\n   \ndemo/a 10.0.0.1:53/udp  # dns\n"
    assert spec.parse_probe_file(text) == [
        ProbeSpec("demo/a", "demo/b", 80, "TCP"),
        ProbeSpec("demo/a", "10.0.0.1", 53, "UDP"),
    ]


def test_parse_file_reports_line_numbers() -> None:
    text = "# header\n\ndemo/a demo/b:80/TCP\ndemo/a demo/b:99999/TCP\n"
    with pytest.raises(ProbeSpecError, match=r"^line 4: port: 99999 is not in 1\.\.65535$"):
        spec.parse_probe_file(text)


def test_format_result_first_word_is_outcome() -> None:
    probe = ProbeSpec("demo/a", "demo/b", 80, "TCP")
    ok = run.ProbeResult("reachable", 0.2149, "connected")
    assert (
        run.format_result(probe, ok) == "reachable  demo/a -> demo/b:80/TCP  rtt=0.21ms  connected"
    )
    lost = run.ProbeResult("timeout", None, "no answer within 1s")
    line = run.format_result("demo/a demo/b:81/TCP", lost)
    assert line.split()[0] == "timeout"
    assert "rtt=-" in line


def test_exit_codes() -> None:
    results = [
        run.ProbeResult("reachable", 1.0, ""),
        run.ProbeResult("refused", 1.0, "ECONNREFUSED"),
        run.ProbeResult("timeout", None, ""),
    ]
    assert [run.exit_code(r) for r in results] == [0, 1, 2]
    assert run.worst_exit_code(results[:2]) == 1
    assert run.worst_exit_code([]) == 0
