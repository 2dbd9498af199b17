"""Store: Kubernetes-shaped resources with list and watch, on etcd or in memory."""
