"""Network policy: parsing the three policy kinds, resolving them per endpoint, tracing."""
