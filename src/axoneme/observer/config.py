"""The observer's agent flags (Cilium's names) and their checks (pure)."""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ObserverConfig", "add_flags", "from_args", "parse_listen_address"]

SOCKET_NAME = "hubble.sock"  # by default beside the agent's own socket


@dataclass(frozen=True)
class ObserverConfig:
    socket: Path | None = None  # gRPC on a root-only unix socket (None: beside the agent's)
    listen_address: str = ""  # gRPC on TCP, "HOST:PORT" ("" = off; the lab uses :4244)
    capacity: int = 4095  # flows kept (hubble-event-buffer-capacity)
    metrics_address: str = ""  # /metrics on "HOST:PORT" ("" = off; the lab uses :9962)


def parse_listen_address(flag: str, text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``:PORT`` (all addresses); raises ValueError naming the flag."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{flag}: {text!r} is not HOST:PORT with a port in 1-65535")
    host = host or "0.0.0.0"
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise ValueError(f"{flag}: {host!r} is not an IPv4 address") from None
    return host, int(port)


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--hubble-socket-path",
        type=Path,
        help=f"observer gRPC unix socket (default: {SOCKET_NAME} beside --socket)",
    )
    p.add_argument(
        "--hubble-listen-address", default="", help="observer gRPC on TCP HOST:PORT (e.g. :4244)"
    )
    p.add_argument("--hubble-event-buffer-capacity", type=int, default=4095)
    p.add_argument(
        "--prometheus-serve-addr", default="", help="serve /metrics on HOST:PORT (e.g. :9962)"
    )


def from_args(ns: argparse.Namespace) -> ObserverConfig:
    """The config from parsed flags; raises ValueError naming the bad flag."""
    if not 1 <= ns.hubble_event_buffer_capacity <= 65535:
        raise ValueError(
            f"--hubble-event-buffer-capacity: {ns.hubble_event_buffer_capacity} "
            "is not between 1 and 65535"
        )
    for flag, value in (
        ("--hubble-listen-address", ns.hubble_listen_address),
        ("--prometheus-serve-addr", ns.prometheus_serve_addr),
    ):
        if value:
            parse_listen_address(flag, value)
    return ObserverConfig(
        socket=ns.hubble_socket_path,
        listen_address=ns.hubble_listen_address,
        capacity=ns.hubble_event_buffer_capacity,
        metrics_address=ns.prometheus_serve_addr,
    )
