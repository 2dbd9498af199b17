"""Labels: the source-qualified key/value pairs that security identities are made of."""
