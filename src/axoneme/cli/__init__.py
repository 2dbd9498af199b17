"""The ``axoneme`` command line: lab, resources, probes, agent status."""
