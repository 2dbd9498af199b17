"""``axoneme-relay``: the cluster-wide flow observer (as hubble-relay)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from axoneme.metrics import REGISTRY
from axoneme.metrics.http import metrics_app
from axoneme.observer.config import parse_listen_address
from axoneme.observer.server import start_server
from axoneme.relay.backend import RelayBackend
from axoneme.relay.peers import Peers
from axoneme.store.etcd import EtcdStore

log = logging.getLogger("axoneme.relay")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="axoneme-relay", description="cluster-wide flow observer")
    p.add_argument("--store", required=True, help="etcd endpoint: http://HOST:PORT or unix:PATH")
    p.add_argument("--socket", type=Path, help="serve on this unix socket (root only)")
    p.add_argument("--listen-address", default="", help="serve on TCP HOST:PORT (e.g. :4245)")
    p.add_argument("--peer-port", type=int, default=4244, help="the nodes' observer port")
    p.add_argument("--metrics-address", default="", help="serve /metrics on HOST:PORT")
    p.add_argument("--check-interval", type=float, default=1.0, help="seconds between peer checks")
    p.add_argument("--sort-window", type=float, default=0.1, help="seconds of live reordering")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    ns = p.parse_args(argv)
    if not ns.store.startswith(("http://", "unix:")):
        p.error(f"--store: {ns.store!r} must be http://HOST:PORT or unix:PATH")
    if not ns.socket and not ns.listen_address:
        p.error("--socket or --listen-address: the relay needs somewhere to serve")
    if not 0 < ns.peer_port <= 65535:
        p.error(f"--peer-port: {ns.peer_port} is not a port (1-65535)")
    if not 0.05 <= ns.check_interval <= 600:
        p.error(f"--check-interval: {ns.check_interval} is not between 0.05 and 600 seconds")
    if not 0 <= ns.sort_window <= 10:
        p.error(f"--sort-window: {ns.sort_window} is not between 0 and 10 seconds")
    for flag, value in (
        ("--listen-address", ns.listen_address),
        ("--metrics-address", ns.metrics_address),
    ):
        if value:
            try:
                parse_listen_address(flag, value)
            except ValueError as exc:
                p.error(str(exc))
    return ns


async def run(ns: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = EtcdStore(ns.store)
    peers = Peers(store, ns.peer_port, ns.check_interval)
    backend = RelayBackend(peers, REGISTRY, ns.sort_window)
    watching = asyncio.ensure_future(peers.run())
    server = await start_server(backend, ns.socket, ns.listen_address)
    metrics: web.AppRunner | None = None
    if ns.metrics_address:
        host, port = parse_listen_address("--metrics-address", ns.metrics_address)
        metrics = web.AppRunner(metrics_app(), access_log=None)
        await metrics.setup()
        await web.TCPSite(metrics, host, port).start()
    log.info("relay serving on %s %s", ns.socket or "", ns.listen_address)
    try:
        done, _ = await asyncio.wait(
            {watching, asyncio.ensure_future(stop.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if watching in done:
            watching.result()  # a failure of the peer manager ends the relay, loudly
    finally:
        watching.cancel()
        await server.stop(0.5)
        if metrics is not None:
            await metrics.cleanup()
        if ns.socket is not None and ns.socket.is_socket():
            ns.socket.unlink()
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    ns = parse_args(argv)
    logging.basicConfig(
        level=ns.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    sys.exit(asyncio.run(run(ns)))


if __name__ == "__main__":
    main()
