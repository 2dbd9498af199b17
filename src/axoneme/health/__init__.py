"""Network health: probes between nodes and to each node's health endpoint (cilium-health)."""
