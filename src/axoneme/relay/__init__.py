"""The relay: every node's flow observer merged into one cluster-wide Observer API."""
