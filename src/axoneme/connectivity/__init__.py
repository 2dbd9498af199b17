"""``axoneme connectivity test``: Cilium's connectivity-test scenario families, run
against the lab.

:mod:`~axoneme.connectivity.scenarios` defines workloads, policies, probes and
expected outcomes (pure data); :mod:`~axoneme.connectivity.runner` deploys, runs
and cleans up; :mod:`~axoneme.connectivity.report` formats the result lines.
"""
