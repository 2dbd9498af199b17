"""Service load balancing: EndpointSlice computation, backend selection, LB desired state."""
