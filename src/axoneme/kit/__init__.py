"""Domain-free helpers (files, network namespaces, ...); imports nothing else from axoneme."""
