"""Cross-node routes are a pure function of the Node set."""

from axoneme.agent.noderoutes import desired_routes
from axoneme.k8s.objects import Node


def test_routes_to_every_other_node() -> None:
    nodes = [
        Node("node1", ("10.42.1.0/24",), "172.30.0.11"),
        Node("node2", ("10.42.2.0/24",), "172.30.0.12"),
        Node("node3", ("10.42.3.0/24",), ""),  # not addressed yet: no route
    ]
    assert desired_routes(nodes, "node1") == {"10.42.2.0/24": "172.30.0.12"}
