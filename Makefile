# Axoneme: the two commands of the README, and the ones developers use.
SHELL := /bin/bash
VENV := .venv
AXONEME := $(VENV)/bin/axoneme
PYTEST := $(VENV)/bin/pytest

.PHONY: deps bpf proto demo demo-down test test-unit test-privileged lint bench clean-lab

deps:
	@scripts/install-deps.sh

# The eBPF datapath objects (bpf/build/); a no-op when up to date.
bpf: deps
	$(MAKE) -s -C bpf

# The observer's gRPC modules, generated from api/observer.proto and committed.
proto: deps
	$(VENV)/bin/python -m grpc_tools.protoc -Iaxoneme/observer/proto=api \
	  --python_out=src --grpc_python_out=src --pyi_out=src api/observer.proto

demo: deps bpf
	@scripts/demo.sh

demo-down: deps
	$(AXONEME) lab down

# Clears state a crashed earlier run left, runs every test, then proves the
# suite itself left nothing behind.
test: deps bpf
	$(AXONEME) lab down >/dev/null
	$(VENV)/bin/python -m axoneme.lab.leakcheck --clean
	AXONEME_REQUIRE_PRIVILEGED=1 $(PYTEST) -p no:cacheprovider tests
	$(VENV)/bin/python -m axoneme.lab.leakcheck

test-unit: deps
	$(PYTEST) -p no:cacheprovider tests/unit

test-privileged: deps
	AXONEME_REQUIRE_PRIVILEGED=1 $(PYTEST) -p no:cacheprovider tests/privileged

lint: deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

# Every benchmark family in one run (about 15 min on 2 cores; takes the lab lock):
# bench/results/latest.md and latest.json. `bench/run.py --quick` is the smoke run.
bench: deps bpf
	$(VENV)/bin/python bench/run.py

clean-lab: deps
	$(AXONEME) lab down
