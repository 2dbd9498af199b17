"""Kubernetes-shaped resources: manifest loading and validation into frozen values."""
