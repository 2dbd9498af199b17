"""The operator: cluster-wide IPAM, node registration, garbage collection, under leader election."""
