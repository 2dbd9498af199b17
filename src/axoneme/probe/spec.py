"""Pure parsing of probe lines: ``SRC DST:PORT/PROTO``.

``SRC`` is ``NS/POD``, ``node:NAME`` or ``world`` (the lab's host outside the
cluster); ``DST`` is any of those or an IPv4 address; ``PROTO`` is TCP, UDP or
SCTP. Resolving names to namespaces and addresses is the caller's job; this
module only checks shape and ranges, and names the offending part in errors.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "WORLD",
    "EndpointKind",
    "ProbeSpec",
    "ProbeSpecError",
    "endpoint_kind",
    "parse_probe_file",
    "parse_probe_line",
]

EndpointKind = Literal["pod", "node", "ip", "world"]
Proto = Literal["TCP", "UDP", "SCTP"]

NODE_PREFIX = "node:"
WORLD = "world"
_PROTOS: dict[str, Proto] = {"TCP": "TCP", "UDP": "UDP", "SCTP": "SCTP"}
# RFC 1123 subdomain, as Kubernetes requires for pod and node names.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
# RFC 1123 label, as Kubernetes requires for namespaces.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class ProbeSpecError(ValueError):
    """A probe line is malformed; the message names the part (and line) at fault."""


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: from ``src`` to ``dst`` on ``port``/``proto`` (proto upper-case)."""

    src: str
    dst: str
    port: int
    proto: Proto

    def __str__(self) -> str:
        # The canonical line: parse_probe_line(str(spec)) == spec.
        return f"{self.src} {self.dst}:{self.port}/{self.proto}"

    def describe(self) -> str:
        """Human form used in reports: ``demo/a -> demo/b:80/TCP``."""
        return f"{self.src} -> {self.dst}:{self.port}/{self.proto}"


def endpoint_kind(ref: str) -> EndpointKind:
    """Classify an already-validated endpoint reference."""
    if ref == WORLD:
        return "world"
    if ref.startswith(NODE_PREFIX):
        return "node"
    return "pod" if "/" in ref else "ip"


def _check_endpoint(field: str, ref: str, *, allow_ip: bool) -> None:
    if ref == WORLD:
        return
    if ref.startswith(NODE_PREFIX):
        name = ref[len(NODE_PREFIX) :]
        if not _NAME.fullmatch(name):
            raise ProbeSpecError(f"{field}: {name!r} is not a valid node name")
        return
    if "/" in ref:
        namespace, _, pod = ref.partition("/")
        if not _NAMESPACE.fullmatch(namespace):
            raise ProbeSpecError(f"{field}: {namespace!r} is not a valid namespace")
        if not _NAME.fullmatch(pod):
            raise ProbeSpecError(f"{field}: {pod!r} is not a valid pod name")
        return
    if allow_ip:
        try:
            ipaddress.IPv4Address(ref)
        except ValueError:
            raise ProbeSpecError(
                f"{field}: {ref!r} is not NS/POD, node:NAME or an IPv4 address, nor {WORLD!r}"
            ) from None
        return
    raise ProbeSpecError(f"{field}: {ref!r} is not NS/POD or node:NAME, nor {WORLD!r}")


def _parse_port(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ProbeSpecError(f"port: {text!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ProbeSpecError(f"port: {port} is not in 1..65535")
    return port


def _parse_proto(text: str) -> Proto:
    proto = _PROTOS.get(text.upper())
    if proto is None:
        raise ProbeSpecError(f"proto: {text!r} is not TCP, UDP or SCTP")
    return proto


def parse_probe_line(line: str) -> ProbeSpec:
    """Parse ``SRC DST:PORT/PROTO``; raise :class:`ProbeSpecError` on any defect."""
    fields = line.split()
    if len(fields) != 2:
        raise ProbeSpecError(
            f"expected 'SRC DST:PORT/PROTO', got {len(fields)} field(s) in {line.strip()!r}"
        )
    src, target = fields
    # rsplit: the destination may itself contain ':' (node:NAME).
    dst, colon, port_proto = target.rpartition(":")
    if not colon or not dst:
        raise ProbeSpecError(f"dst: {target!r} lacks ':PORT/PROTO'")
    port_text, slash, proto_text = port_proto.partition("/")
    if not slash:
        raise ProbeSpecError(f"proto: {port_proto!r} lacks '/TCP' or '/UDP' (or '/SCTP')")
    _check_endpoint("src", src, allow_ip=False)
    _check_endpoint("dst", dst, allow_ip=True)
    return ProbeSpec(src=src, dst=dst, port=_parse_port(port_text), proto=_parse_proto(proto_text))


def parse_probe_file(text: str) -> list[ProbeSpec]:
    """Parse one probe per line, skipping blanks and ``#`` comments (also trailing ones).

    Errors are re-raised with the 1-based line number in front.
    """
    specs: list[ProbeSpec] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        # '#' never occurs in a valid probe, so cutting at it is safe.
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        try:
            specs.append(parse_probe_line(line))
        except ProbeSpecError as exc:
            raise ProbeSpecError(f"line {number}: {exc}") from exc
    return specs
