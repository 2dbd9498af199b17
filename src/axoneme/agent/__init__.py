"""The node agent: endpoints and IPAM for the CNI plugin, node routes, the local API."""
