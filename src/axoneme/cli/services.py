"""``axoneme get svc|endpointslices`` tables, as kubectl prints them."""

from __future__ import annotations

from typing import Any

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
