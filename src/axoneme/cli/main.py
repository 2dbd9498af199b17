"""``axoneme``: the command-line entry point and its argument grammar."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

from axoneme.cli.context import CLIError, agents


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="axoneme", description="Axoneme: eBPF networking for clusters")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lab = sub.add_parser("lab", help="build, inspect or remove the local multi-node lab")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, metavar="up|down|status|etcd")
    up = lab_sub.add_parser("up", help="build a lab and start its agents and store")
    up.add_argument("--nodes", type=int, default=2, help="number of nodes (default 2)")
    up.add_argument("--pod-cidr", default="10.42.0.0/16", help="cluster pod CIDR")
    up.add_argument("--pod-cidr-mask", type=int, default=24, help="each node's pod CIDR size")
    up.add_argument(
        "--policy-enforcement",
        choices=["default", "always", "never"],
        default="default",
        help="as Cilium's enable-policy (default: default)",
    )
    up.add_argument(
        "--policy-audit-mode",
        action="store_true",
        help="report would-be policy drops as AUDIT instead of dropping",
    )
    up.add_argument(
        "--routing-mode",
        choices=["tunnel", "native"],
        default="tunnel",
        help="between nodes: VXLAN with the identity in the VNI, or kernel routes (default tunnel)",
    )
    up.add_argument(
        "--host-routing",
        choices=["bpf", "legacy"],
        default="bpf",
        help="bpf: the datapath forwards past the stack (redirect_peer/neigh); default bpf",
    )
    up.add_argument(
        "--nodeport-acceleration",
        choices=["native", "disabled"],
        default="disabled",
        help="the agents translate NodePort traffic in native XDP first (default disabled)",
    )
    up.add_argument(
        "--bpf-lb-mode",
        choices=["snat", "dsr"],
        default="snat",
        help="NodePort to another node's backend: SNAT, or DSR (replies from the backend's node)",
    )
    up.add_argument(
        "--service-no-backend-response",
        choices=["reject", "drop"],
        default="reject",
        help="a frontend without backends answers ICMP unreachable, or drops (default reject)",
    )
    up.add_argument(
        "--health",
        action="store_true",
        help="health endpoints on every node and probes between nodes (cilium-health)",
    )
    lab_sub.add_parser("down", help="remove everything the lab created")
    lab_sub.add_parser("status", help="nodes, agents and store health")
    lab_etcd = lab_sub.add_parser("etcd", help="stop or start the lab's etcd (an outage on demand)")
    lab_etcd.add_argument("action", choices=["stop", "start"])

    apply = sub.add_parser("apply", help="create or update resources from a manifest")
    apply.add_argument("-f", "--filename", required=True, help="manifest file, or - for stdin")
    delete = sub.add_parser("delete", help="delete the resources of a manifest, or KIND NAME")
    delete.add_argument("-f", "--filename", help="manifest file, or - for stdin")
    delete.add_argument("resource", nargs="?", help="KIND (e.g. ciliumnode) when no -f")
    delete.add_argument("name", nargs="?", help="NAME when no -f")
    delete.add_argument("-n", "--namespace", help="namespace of a namespaced KIND")

    get = sub.add_parser("get", help="list pods, nodes or namespaces")
    get.add_argument("resource", help="pods, nodes or namespaces")
    scope = get.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="namespace (default: default)")
    scope.add_argument("-A", "--all-namespaces", action="store_true")
    get.add_argument("-o", "--output", choices=["wide", "yaml", "json"])

    ex = sub.add_parser("exec", help="run a command in a pod's network namespace")
    ex.add_argument("pod", help="NAMESPACE/NAME")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ...")

    probe = sub.add_parser("probe", help="test reachability: SRC DST:PORT/PROTO")
    probe.add_argument(
        "src", nargs="?", help="NS/POD, node:NAME or world (the lab's host outside the cluster)"
    )
    probe.add_argument(
        "dst",
        nargs="?",
        help="NS/POD, node:NAME, world or IP, then :PORT/PROTO (PROTO: TCP, UDP or SCTP)",
    )
    probe.add_argument("-f", "--file", help="file of 'SRC DST:PORT/PROTO' lines, - for stdin")
    probe.add_argument("--timeout", type=float, default=2.0, help="seconds per probe (default 2)")

    status = sub.add_parser("status", help="agent status")
    status.add_argument("--verbose", action="store_true")
    status.add_argument("--node", help="only this lab node")

    pol = sub.add_parser("policy", help="network policies: import, get, delete, wait, trace")
    pol_sub = pol.add_subparsers(
        dest="policy_command", required=True, metavar="import|get|delete|wait|trace"
    )
    pimp = pol_sub.add_parser("import", help="create or update policies from a manifest")
    pimp.add_argument("-f", "--filename", required=True, help="manifest file, or - for stdin")
    pget = pol_sub.add_parser("get", help="list policies")
    pscope = pget.add_mutually_exclusive_group()
    pscope.add_argument("-n", "--namespace", help="namespace (default: all)")
    pscope.add_argument("-A", "--all-namespaces", action="store_true")
    pget.add_argument("-o", "--output", choices=["yaml", "json"])
    pdel = pol_sub.add_parser("delete", help="delete policies by name, or all")
    pdel.add_argument("names", nargs="*", help="policy names")
    pdel.add_argument("-n", "--namespace", default="default")
    pdel.add_argument("--kind", choices=["netpol", "cnp", "ccnp"], help="only this kind")
    pdel.add_argument("--all", action="store_true", help="delete every policy of every kind")
    ptrace = pol_sub.add_parser("trace", help="the verdict for a flow, and the rules behind it")
    ptrace.add_argument("--src", required=True, help="NAMESPACE/POD or IP")
    ptrace.add_argument("--dst", required=True, help="NAMESPACE/POD or IP")
    ptrace.add_argument("--dport", required=True, help="PORT/PROTO, e.g. 80/TCP")
    pwait = pol_sub.add_parser("wait", help="wait until every node runs a policy revision")
    pwait.add_argument("revision", nargs="?", type=int, help="default: the latest")
    pwait.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")

    ident = sub.add_parser("identity", help="security identities")
    ident_sub = ident.add_subparsers(dest="identity_command", required=True, metavar="list|get|gc")
    ident_sub.add_parser("list", help="every identity and its labels")
    iget = ident_sub.add_parser("get", help="one identity")
    iget.add_argument("id", type=int)
    igc = ident_sub.add_parser("gc", help="delete identities no live node uses")
    igc.add_argument(
        "--grace",
        type=float,
        default=900.0,
        help="only those unused for this many seconds (default 900)",
    )

    bpf = sub.add_parser("bpf", help="what the kernel's maps hold")
    bpf_sub = bpf.add_subparsers(
        dest="bpf_command", required=True, metavar="ipcache|policy|ct|lb|retrans"
    )
    bip = bpf_sub.add_parser("ipcache", help="IP prefix -> identity")
    bip.add_argument("action", choices=["list"])
    bip.add_argument("--node", help="only this lab node")
    bpol = bpf_sub.add_parser("policy", help="an endpoint's policy entries")
    bpol.add_argument("action", choices=["get"])
    bpol.add_argument("endpoint", type=int, help="endpoint ID")
    bpol.add_argument("--node", help="only this lab node")
    bct = bpf_sub.add_parser("ct", help="connection tracking entries")
    bct.add_argument("action", choices=["list"])
    bct.add_argument("--node", help="only this lab node")
    blb = bpf_sub.add_parser("lb", help="service frontends and backend slots")
    blb.add_argument("action", choices=["list"])
    blb.add_argument("--node", help="only this lab node")
    bre = bpf_sub.add_parser("retrans", help="TCP retransmissions per flow of the nodes' pods")
    bre.add_argument("action", choices=["list"])
    bre.add_argument("--node", help="only this lab node")

    svc = sub.add_parser("service", help="services as a node's load balancer holds them")
    svc.add_argument("action", choices=["list"])
    svc.add_argument("--node", help="only this lab node")

    mon = sub.add_parser("monitor", help="datapath events, live")
    mon.add_argument(
        "--type",
        "-t",
        action="append",
        default=[],
        choices=["drop", "policy-verdict", "trace"],
        help="only these event types",
    )
    mon.add_argument("--node", help="only this lab node")
    mon.add_argument("-j", "--json", action="store_true", help="one JSON object per event")
    mon.add_argument("-n", "--max-events", type=int, help="stop after N events")
    mon.add_argument("--duration", type=float, help="stop after S seconds")

    from axoneme.cli import observe
    from axoneme.ui import command as ui

    observe.add_parser(sub)
    ui.add_parser(sub)

    ep = sub.add_parser("endpoint", help="endpoints on the nodes")
    ep_sub = ep.add_subparsers(dest="endpoint_command", required=True, metavar="list")
    ep_list = ep_sub.add_parser("list", help="list endpoints")
    ep_list.add_argument("--node", help="only this lab node")

    conn = sub.add_parser("connectivity", help="check the cluster's connectivity end to end")
    conn_sub = conn.add_subparsers(dest="connectivity_command", required=True, metavar="test")
    ctest = conn_sub.add_parser(
        "test", help="deploy test workloads, run the scenarios, remove the workloads"
    )
    ctest.add_argument(
        "--test",
        action="append",
        default=[],
        metavar="REGEX",
        help="only scenarios whose name matches; !REGEX excludes (repeatable)",
    )
    ctest.add_argument("--timeout", type=float, default=2.0, help="seconds per probe (default 2)")
    ctest.add_argument(
        "--keep", action="store_true", help="leave the test namespace and its workloads in place"
    )
    return p


def _lab(args: argparse.Namespace) -> int:
    from axoneme.lab import control
    from axoneme.lab.topology import LabConfig

    if args.lab_command == "up":
        config = LabConfig(
            args.nodes,
            args.pod_cidr,
            args.pod_cidr_mask,
            args.policy_enforcement,
            args.policy_audit_mode,
            health=args.health,
            routing_mode=args.routing_mode,
            host_routing=args.host_routing,
            nodeport_acceleration=args.nodeport_acceleration,
            lb_mode=args.bpf_lb_mode,
            no_backend_response=args.service_no_backend_response,
        )
        try:
            config.validate()
            state = control.up(config)
        except (ValueError, control.LabError) as exc:
            raise CLIError(str(exc)) from exc
        for node in state["nodes"]:
            print(
                f"node {node['name']}: {node['ip']}  pod CIDR {node['pod_cidr']}  "
                f"netns {node['netns']}"
            )
        print(f"store: etcd at {state['store']['url']} (unix:{state['store']['unix']})")
        print("lab is up; remove it with: axoneme lab down")
        return 0
    if args.lab_command == "down":
        swept = control.down()
        print(f"lab removed (swept: {swept})")
        left = control.leftovers()
        if not left.empty:
            raise CLIError(f"could not remove: {left}")
        return 0
    if args.lab_command == "etcd":
        try:
            control.etcd_control(args.action)
        except control.LabError as exc:
            raise CLIError(str(exc)) from exc
        print(f"etcd {'stopped' if args.action == 'stop' else 'started'}")
        return 0
    return _lab_status(control)


def _lab_status(control: object) -> int:
    from axoneme.api.client import AgentClient, AgentUnavailableError
    from axoneme.cli.output import table
    from axoneme.lab import control as ctl

    state = ctl.read_state()
    if state is None or not ctl.alive(state.get("supervisorPid")):
        print("no lab is running")
        return 1
    rows, ok = [], True
    for n in state["nodes"]:
        pid = n.get("agentPid")
        try:
            AgentClient(Path(n["socket"]), timeout=3).get("/v1/healthz")
            health = "Ok"
        except AgentUnavailableError as exc:
            health, ok = f"Failure ({exc})", False
        rows.append([n["name"], n["ip"], n["pod_cidr"], str(pid), str(n["agentRestarts"]), health])
    print(table(["NODE", "IP", "POD CIDR", "AGENT PID", "RESTARTS", "AGENT"], rows))
    from axoneme.lab import world, worldlb

    print(world.status_line())
    for line in worldlb.status_lines():
        print(line)
    store_ok = asyncio.run(_store_health())
    print(f"store: {store_ok}")
    return 0 if ok and store_ok.startswith("Ok") else 1


async def _store_health() -> str:
    from axoneme.cli.context import open_store
    from axoneme.store.types import StoreError

    store = open_store()
    try:
        return await store.health()
    except StoreError as exc:
        return f"Failure: {exc}"
    finally:
        await store.close()


def _probe(args: argparse.Namespace) -> int:
    from axoneme.cli.probe import run_probes
    from axoneme.probe.run import format_result, worst_exit_code
    from axoneme.probe.spec import ProbeSpecError, parse_probe_file, parse_probe_line

    if args.timeout <= 0:
        raise CLIError(f"--timeout: {args.timeout} must be positive")
    try:
        if args.file:
            if args.src or args.dst:
                raise CLIError("give either -f FILE or SRC DST:PORT/PROTO, not both")
            text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
            specs = parse_probe_file(text)
        else:
            if not (args.src and args.dst):
                raise CLIError("usage: axoneme probe SRC DST:PORT/PROTO (or -f FILE)")
            specs = [parse_probe_line(f"{args.src} {args.dst}")]
    except ProbeSpecError as exc:
        raise CLIError(str(exc)) from exc
    except OSError as exc:
        raise CLIError(f"-f {args.file}: {exc.strerror}") from exc
    results = asyncio.run(run_probes(specs, args.timeout))
    for spec, result in zip(specs, results, strict=True):
        print(format_result(spec, result))
    return worst_exit_code(results)


def _policy(args: argparse.Namespace) -> int:
    from axoneme.cli import policy

    cmd = args.policy_command
    if cmd == "import":
        lines, revision = asyncio.run(policy.import_file(args.filename))
        print("\n".join(lines))
        print(f"revision {revision}")
        return 0
    if cmd == "get":
        items = asyncio.run(policy.list_policies(args.namespace))
        print(policy.render(items, args.output or ""))
        return 0
    if cmd == "delete":
        if bool(args.names) == args.all:
            raise CLIError("give policy names, or --all")
        lines, revision = asyncio.run(
            policy.delete(args.names, args.namespace, args.kind, args.all)
        )
        print("\n".join(lines) if lines else "no policies to delete")
        print(f"revision {revision}")
        return 0
    if cmd == "wait":
        if args.timeout <= 0:
            raise CLIError(f"--timeout: {args.timeout} must be positive")
        print(policy.run_wait(agents(None), args.revision, args.timeout))
        return 0
    from axoneme.cli import trace
    from axoneme.cli.agentcmds import first_policy_status

    view = asyncio.run(trace.load_cluster())
    mode, audit = trace.agent_settings(first_policy_status(agents(None)))
    result = trace.run_trace(view, args.src, args.dst, args.dport, mode, audit)
    print(result.text)
    return 0


def _per_node(node: str | None, render: Callable[[Path], str]) -> str:
    from axoneme.cli import inspect

    dirs = inspect.pin_dirs(node)
    if len(dirs) == 1:
        return render(dirs[0][1])
    return "\n\n".join(f"Node: {name}\n{render(pin)}" for name, pin in dirs)


def _inspect(args: argparse.Namespace) -> int:
    from axoneme.cli import inspect, services

    if args.command == "service":
        print(_per_node(args.node, services.service_list))
        return 0

    if args.command == "identity" and args.identity_command == "gc":
        if args.grace < 0:
            raise CLIError(f"--grace: {args.grace} must not be negative")
        removed = asyncio.run(inspect.collect(args.grace))
        print(f"removed {len(removed)} identities" + (f": {removed}" if removed else ""))
        return 0
    if args.command == "identity":
        found = asyncio.run(inspect.identities())
        if args.identity_command == "get":
            if args.id not in found:
                raise CLIError(f"identity {args.id} not found")
            found = {args.id: found[args.id]}
        print(inspect.identity_table(found))
        return 0
    if args.command == "bpf":
        if args.bpf_command == "ipcache":
            print(inspect.bpf_ipcache(args.node))
        elif args.bpf_command == "policy":
            print(inspect.bpf_policy(args.node, args.endpoint))
        elif args.bpf_command == "lb":
            print(_per_node(args.node, services.bpf_lb_list))
        elif args.bpf_command == "retrans":
            from axoneme.cli import retrans

            text, ok = retrans.retrans_list(agents(args.node))
            print(text)
            return 0 if ok else 1
        else:
            print(inspect.bpf_ct(args.node))
        return 0
    if args.max_events is not None and args.max_events < 1:
        raise CLIError(f"--max-events: {args.max_events} must be at least 1")
    for node, event in inspect.monitor(
        agents(args.node), set(args.type), args.max_events, args.duration
    ):
        print(
            json.dumps({"node": node, **event}) if args.json else inspect.format_event(node, event),
            flush=True,
        )
    return 0


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "lab":
        return _lab(args)
    if args.command in ("apply", "delete", "get"):
        from axoneme.cli import resources

        if args.command == "apply":
            for line in asyncio.run(resources.apply(args.filename)):
                print(line)
            return 0
        if args.command == "delete" and not args.filename:
            if not (args.resource and args.name):
                raise CLIError("delete: give -f FILE, or KIND NAME (e.g. delete ciliumnode node1)")
            kind = resources.kind_of(args.resource)
            if not asyncio.run(resources.delete_named(kind, args.name, args.namespace)):
                print(f"error: {kind.lower()}/{args.name} not found", file=sys.stderr)
                return 1
            print(f"{kind.lower()}/{args.name} deleted")
            return 0
        if args.command == "delete":
            if args.resource:
                raise CLIError("delete: give either -f FILE or KIND NAME, not both")
            done, missing = asyncio.run(resources.delete(args.filename))
            for line in done:
                print(line)
            for line in missing:
                print(f"error: {line}", file=sys.stderr)
            return 1 if missing else 0
        kind = resources.kind_of(args.resource)
        items = asyncio.run(resources.get(kind, args.namespace, args.all_namespaces))
        print(resources.render(kind, items, args.output or "", args.all_namespaces))
        return 0
    if args.command == "exec":
        from axoneme.cli.probe import exec_in_pod

        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        asyncio.run(exec_in_pod(args.pod, cmd))
        return 0  # not reached: exec replaces the process
    if args.command == "probe":
        return _probe(args)
    if args.command == "policy":
        return _policy(args)
    if args.command in ("identity", "bpf", "monitor", "service"):
        return _inspect(args)
    if args.command == "observe":
        from axoneme.cli import observe

        return observe.run(args)
    if args.command == "ui":
        from axoneme.ui import command as ui

        return ui.run(args)
    if args.command == "connectivity":
        from axoneme.connectivity.command import run_test_command

        return run_test_command(args.test, args.timeout, args.keep)
    from axoneme.cli import agentcmds

    if args.command == "status":
        text, ok = agentcmds.status_text(agents(args.node), args.verbose)
    else:
        text, ok = agentcmds.endpoint_rows(agents(args.node))
    print(text)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        code = dispatch(args)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
