"""IP address management: host-scope allocation from the node's pod CIDR."""
