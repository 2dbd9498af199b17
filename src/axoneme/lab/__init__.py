"""The lab: a multi-node cluster on one machine, built from network namespaces."""
