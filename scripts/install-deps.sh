#!/usr/bin/env bash
# Installs every Debian and Python package Axoneme needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(etcd-server etcd-client iproute2 containerd runc containernetworking-plugins
      busybox-static qperf iperf3 python3 python3-venv curl procps iputils-ping
      make clang-19 llvm-19 libbpf-dev libbpf1 bpftool libc6-dev linux-libc-dev iptables
      util-linux prometheus chromium)
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's containerd package starts nothing without systemd; make sure no
# stray daemon from the package holds /run/containerd.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test,lint]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
