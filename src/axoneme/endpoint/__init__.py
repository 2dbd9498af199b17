"""Endpoints: a pod's attachment to the node (address, devices, labels), and their lifecycle."""
