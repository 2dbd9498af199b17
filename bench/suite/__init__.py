"""The pieces of ``bench/run.py`` (``make bench``): result rows, report rendering, qperf,
the reference topologies (plain kernel routing, iptables + kube-proxy rules), the Axoneme
lab datapaths, and adapters for the per-subsystem benchmark scripts."""
