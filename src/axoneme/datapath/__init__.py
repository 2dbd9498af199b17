"""Datapath: what the agent programs into the kernel (links, routes; eBPF later)."""
