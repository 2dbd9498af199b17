#!/usr/bin/env bash
# `make demo`: a 2-node lab, the example workload, and pods talking across nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
AX=.venv/bin/axoneme
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "axoneme lab up --nodes 2"
$AX lab up --nodes 2

step "axoneme apply -f examples/demo.yaml"
$AX apply -f examples/demo.yaml

step "waiting for the pods to run"
for _ in $(seq 1 100); do
  if $AX get pods -n demo -o json | .venv/bin/python -c '
import json, sys
items = json.load(sys.stdin)["items"]
sys.exit(0 if items and all(p["status"].get("phase") == "Running" for p in items) else 1)'; then
    break
  fi
  sleep 0.2
done
$AX get pods -n demo -o wide

step "axoneme endpoint list"
$AX endpoint list

step "pod to pod, same node and across nodes (TCP and UDP), node to pod"
$AX probe -f - <<'PROBES'
demo/client demo/web-1:80/TCP
demo/client demo/web-2:80/TCP
demo/client demo/web-2:53/UDP
demo/web-2 demo/web-1:80/TCP
node:node1 demo/web-2:80/TCP
PROBES

step "pod to its node: nothing listens on node1:80, so the node's answer is a TCP reset"
$AX probe demo/client node:node1:80/TCP || true
$AX exec demo/client -- ping -c1 -W2 172.30.0.11

step "HTTP from demo/client to demo/web-2 (on the other node)"
WEB2=$($AX get pods -n demo -o json | .venv/bin/python -c '
import json, sys
print(next(p["status"]["podIP"] for p in json.load(sys.stdin)["items"] if p["metadata"]["name"] == "web-2"))')
$AX exec demo/client -- curl -s "http://$WEB2/hello"
echo

step "identity-based policy, enforced in the kernel: only demo/client may reach web on 80/TCP"
$AX policy import -f examples/policy.yaml
$AX policy wait
$AX probe --timeout 1 -f - <<'PROBES' || true
demo/client demo/web-2:80/TCP
demo/client demo/web-2:53/UDP
demo/web-1 demo/web-2:80/TCP
PROBES
$AX policy trace --src demo/web-1 --dst demo/web-2 --dport 80/TCP
$AX endpoint list

step "axoneme status"
$AX status

cat <<'DONE'

The lab is still running: try `.venv/bin/axoneme get pods -A -o wide`,
`.venv/bin/axoneme probe demo/client demo/web-1:80/TCP`, `.venv/bin/axoneme lab status`.
Tear it down with:  make demo-down   (or: .venv/bin/axoneme lab down)
DONE
