"""``axoneme ui``: serve the web UI on a loopback address until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import socket
from pathlib import Path

from aiohttp import web

from axoneme.cli.context import CLIError, agents
from axoneme.health.checker import Thresholds
from axoneme.ui.server import build_app
from axoneme.ui.sources import AgentHealth, RelayFlows

__all__ = ["add_parser", "parse_listen", "run"]

DEFAULT_LISTEN = "127.0.0.1:12000"  # Hubble UI's port


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ui = sub.add_parser("ui", help="web UI: live service map, flows, health alerts")
    ui.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"loopback HOST:PORT (default {DEFAULT_LISTEN})"
    )
    ui.add_argument("-n", "--namespace", default="", help="namespace shown first (default: all)")
    ui.add_argument("--server", help="unix:PATH of the relay or an observer (default: lab relay)")
    ui.add_argument(
        "--loss-threshold", type=float, help="alert above this loss ratio (default: the agents')"
    )
    ui.add_argument(
        "--jitter-threshold",
        type=float,
        help="alert above this jitter in seconds (default: agents')",
    )


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` on a loopback address: the UI is never served to a network."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise CLIError(f"--listen: {text!r} is not HOST:PORT with a port in 0..65535")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise CLIError(f"--listen: {host!r} is not an IP address") from None
    if not address.is_loopback:
        raise CLIError(f"--listen: {host} is not a loopback address (127.0.0.0/8 or ::1)")
    return str(address), int(port_text)


def _thresholds(args: argparse.Namespace) -> Thresholds | None:
    if args.loss_threshold is None and args.jitter_threshold is None:
        return None
    base = Thresholds()
    try:
        return Thresholds(
            args.loss_threshold if args.loss_threshold is not None else base.loss_ratio,
            args.jitter_threshold if args.jitter_threshold is not None else base.jitter_seconds,
        )
    except ValueError as exc:
        flag = "--loss-threshold" if "loss" in str(exc) else "--jitter-threshold"
        raise CLIError(f"{flag}: {exc}") from None


def _target(server: str | None) -> str:
    from axoneme.lab.topology import relay_socket

    if server:
        if not server.startswith("unix:"):
            raise CLIError(f"--server: {server!r} must be unix:PATH")
        return server
    path = relay_socket()
    if not Path(path).is_socket():
        raise CLIError(f"no relay at {path}: is the lab up? (or give --server unix:PATH)")
    return f"unix:{path}"


async def _serve(args: argparse.Namespace, host: str, port: int) -> None:
    flows = RelayFlows(_target(args.server))
    app = build_app(
        flows,
        AgentHealth(agents(None)),
        default_namespace=args.namespace,
        thresholds=_thresholds(args),
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise CLIError(f"--listen: cannot listen on {host}:{port}: {exc.strerror}") from None
        await web.SockSite(runner, sock).start()
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"Axoneme UI on http://{shown}:{bound}/", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
        await flows.close()


def run(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    _thresholds(args)  # bad thresholds are reported before anything starts
    _target(args.server)
    asyncio.run(_serve(args, host, port))
    return 0
