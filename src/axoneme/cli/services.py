"""Services in the CLI: ``get svc|endpointslices`` (as kubectl prints them),
``service list`` and ``bpf lb list`` (what a node's maps hold, as Cilium prints
them), and the KubeProxyReplacement part of ``status``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axoneme.cli.context import CLIError
from axoneme.cli.output import age, table


def _ports(svc: dict[str, Any]) -> str:
    out = []
    for p in svc.get("spec", {}).get("ports", []):
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p['port']}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external(svc: dict[str, Any]) -> str:
    spec = svc.get("spec", {})
    ips = list(spec.get("externalIPs", []))
    ips += [
        i["ip"]
        for i in svc.get("status", {}).get("loadBalancer", {}).get("ingress", [])
        if i.get("ip")
    ]
    if ips:
        return ",".join(ips)
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def render_table(kind: str, items: list[dict[str, Any]], all_namespaces: bool) -> str:
    rows = []
    for o in items:
        meta = o["metadata"]
        ns = [meta.get("namespace", "")] if all_namespaces else []
        if kind == "Service":
            spec = o.get("spec", {})
            row = [
                meta["name"],
                spec.get("type", "ClusterIP"),
                spec.get("clusterIP") or "<none>",
                _external(o),
                _ports(o),
                age(meta.get("creationTimestamp")),
            ]
        else:
            ports = ",".join(str(p.get("port")) for p in o.get("ports", [])) or "<unset>"
            addrs = [e["addresses"][0] for e in o.get("endpoints", []) if e.get("addresses")]
            shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
            row = [
                meta["name"],
                o.get("addressType", ""),
                ports,
                shown or "<unset>",
                age(meta.get("creationTimestamp")),
            ]
        rows.append(ns + row)
    headers = (
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
        if kind == "Service"
        else ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    )
    return table((["NAMESPACE"] if all_namespaces else []) + headers, rows)


# ---- what the kernel's load-balancing maps hold ------------------------------------


def _lb_maps(pin_dir: Path) -> dict[str, dict[bytes, bytes]]:
    from axoneme.datapath.linux import bpfsys
    from axoneme.datapath.linux.lbmaps import LB_MAP_NAMES

    out: dict[str, dict[bytes, bytes]] = {}
    for name in ("axo_lb_svc", "axo_lb_slot", "axo_lb_backend"):
        if name not in LB_MAP_NAMES or not (pin_dir / name).exists():
            raise CLIError(f"no service maps pinned in {pin_dir} (is the socket LB running?)")
        with bpfsys.BpfMap.open_pinned(pin_dir / name) as m:
            out[name] = dict(m.lookup_batch())
    return out


@dataclass(frozen=True)
class LBView:
    """One frontend as the maps hold it: id, address, kind, backends in slot order."""

    svc_id: int
    frontend: str
    kind: str
    flags: int
    slots: list[tuple[int, str]]  # (slot, backend address) of active backends
    backends: list[tuple[str, str]]  # (address, "active" | "terminating"), active first


def lb_views(pin_dir: Path) -> list[LBView]:
    from axoneme.datapath.linux.lbmaps import (
        LB_BE_TERMINATING,
        PROTO_NAMES,
        Backend,
        SvcKey,
        SvcValue,
        kind_of,
        unpack_slot_key,
    )

    maps = _lb_maps(pin_dir)
    backends = {
        int.from_bytes(k, "little"): Backend.unpack(v) for k, v in maps["axo_lb_backend"].items()
    }
    slots: dict[int, dict[int, int]] = {}
    for raw, value in maps["axo_lb_slot"].items():
        svc_id, slot = unpack_slot_key(raw)
        slots.setdefault(svc_id, {})[slot] = int.from_bytes(value, "little")

    def addr(b: Backend) -> str:
        return f"{b.ip}:{b.port}"

    views = []
    for raw, value in maps["axo_lb_svc"].items():
        key, svc = SvcKey.unpack(raw), SvcValue.unpack(value)
        proto = PROTO_NAMES.get(key.proto, str(key.proto))
        active_ids = [slots.get(svc.svc_id, {}).get(s) for s in range(1, svc.count + 1)]
        active = [(s, addr(backends[i])) for s, i in enumerate(active_ids, 1) if i in backends]
        leaving = sorted(
            addr(b)
            for b in backends.values()
            if b.svc_id == svc.svc_id and b.flags & LB_BE_TERMINATING
        )
        views.append(
            LBView(
                svc.svc_id,
                f"{key.vip}:{key.port}"
                + ("" if proto == "TCP" else f"/{proto}")
                + ("/i" if key.scope else ""),  # the internal twin, as Cilium marks it
                kind_of(svc.flags),
                svc.flags,
                active,
                [(a, "active") for _, a in active] + [(a, "terminating") for a in leaving],
            )
        )
    return sorted(views, key=lambda v: v.svc_id)


def service_list(pin_dir: Path) -> str:
    """``cilium service list``'s table: ``ID  Frontend  Service Type  Backend``."""
    rows: list[list[str]] = []
    for v in lb_views(pin_dir):
        lines = [f"{i} => {a} ({state})" for i, (a, state) in enumerate(v.backends, 1)]
        rows.append([str(v.svc_id), v.frontend, v.kind, lines[0] if lines else ""])
        rows += [["", "", "", line] for line in lines[1:]]
    return table(["ID", "Frontend", "Service Type", "Backend"], rows)


def bpf_lb_list(pin_dir: Path) -> str:
    """``cilium bpf lb list``: every service entry and its backend slots."""
    from axoneme.datapath.linux.lbmaps import LB_F_AFFINITY, LB_F_MAGLEV, LB_F_TWO_SCOPES

    rows: list[list[str]] = []
    for v in lb_views(pin_dir):
        tags = [v.kind] + (["maglev"] if v.flags & LB_F_MAGLEV else [])
        tags += ["sessionAffinity"] if v.flags & LB_F_AFFINITY else []
        tags += ["two-scopes"] if v.flags & LB_F_TWO_SCOPES else []
        rows.append([v.frontend, f"0.0.0.0:0 ({v.svc_id}) (0) [{', '.join(tags)}]"])
        rows += [["", f"{a} ({v.svc_id}) ({s})"] for s, a in v.slots]
    return table(["SERVICE ADDRESS", "BACKEND ADDRESS (REVNAT_ID) (SLOT)"], rows)


def kpr_lines(kpr: dict[str, Any] | None, verbose: bool) -> list[str]:
    """The KubeProxyReplacement part of ``axoneme status``."""
    if not kpr:
        return ["KubeProxyReplacement:    False   (no load-balancing component)"]
    how = f"[socket LB on {kpr['cgroup']}]" if kpr["socketLB"] == "Enabled" else ""
    if kpr.get("problem") and kpr["problem"] != "off":
        how = f"(Failure: {kpr['problem']})"
    lines = [f"KubeProxyReplacement:    {kpr['status']}   {how}".rstrip()]
    if verbose:
        lines += [
            "KubeProxyReplacement Details:",
            f"  Status:                 {kpr['status']}",
            f"  Socket LB:              {kpr['socketLB']}",
            f"  Socket LB Protocols:    {kpr['socketLBProtocols'] or '-'}",
            f"  Backend Selection:      {str(kpr['algorithm']).capitalize()}",
            f"  Maglev Table Size:      {kpr['maglevTableSize']}",
            f"  Session Affinity:       {kpr['sessionAffinity']}",
            f"  NodePort:               {kpr['nodePort']}",
            f"  DSR:                    {kpr['dsr']}",
            # What a frontend without backends answers from outside (NodePort on).
            f"  No Backend Response:    {str(kpr.get('noBackendResponse') or '-').capitalize()}",
            f"  XDP Acceleration:       {kpr['xdpAcceleration']}",
            f"  Services:               {kpr['frontends']} frontends, {kpr['backends']} backends",
            f"  Health Check NodePort:  {kpr.get('healthCheckNodePort', 'Disabled')}",
            *health_check_lines(kpr.get("healthCheckNodePorts") or []),
        ]
    return lines


def health_check_lines(ports: list[dict[str, Any]]) -> list[str]:
    """One line per healthCheckNodePort the node serves: what it answers, or why it cannot."""
    lines = []
    for p in ports:
        n = p["localEndpoints"]
        counted = f"{n} local endpoint{'' if n == 1 else 's'}"
        how = f"HTTP {p['status']}" if p["status"] else f"not listening: {p['error']}"
        lines.append(f"    {p['port']:<6} {p['service']}: {counted} ({how})")
    return lines
