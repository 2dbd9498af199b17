"""Connectivity probes behind ``axoneme probe``: parse ``SRC DST:PORT/PROTO`` lines
(:mod:`axoneme.probe.spec`) and run resolved probes concurrently from inside source
network namespaces (:mod:`axoneme.probe.run`).

Resolving pod and node names to namespaces and addresses is the caller's job.
"""

from axoneme.probe import run, spec

__all__ = ["run", "spec"]
