"""Security identities: numeric IDs for label sets, shared by every node."""
