"""CNI plugin: a thin, fast-starting client of the node agent (stdlib only)."""
