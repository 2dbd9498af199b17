"""Axoneme: eBPF networking, policy and observability for Kubernetes-style clusters."""

__version__ = "0.1.0"
