"""IPCache: which security identity every known IP or prefix has, and which node hosts it.

``model`` computes the desired prefix → (identity, tunnel IP, source) table of
one node from the cluster's endpoints, nodes and the node's CIDR identities,
and diffs two tables into the upserts and deletes the datapath map needs.
An address with no entry is ``world`` (the lookup miss in ``axo_ipcache``).
"""
