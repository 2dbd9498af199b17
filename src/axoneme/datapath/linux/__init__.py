"""Linux datapath pieces driven through netlink (pyroute2)."""
