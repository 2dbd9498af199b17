"""Prometheus metrics: one registry per process (an agent, the relay, the operator).

Every component registers its families on ``REGISTRY`` and the process serves
it with :func:`axoneme.metrics.http.metrics_app` (text exposition format).
Names follow Cilium's and Hubble's (``axoneme_*`` for the agent families,
``hubble_*`` for the flow families) so dashboards carry over.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

REGISTRY = CollectorRegistry(auto_describe=True)
