// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The pod endpoint programs, attached to the host side of each pod's veth
 * (docs/datapath.md, "Programs"):
 *
 *   from_container  tc ingress: packets leaving the pod  -> egress policy
 *   to_container    tc egress:  packets entering the pod -> ingress policy
 *
 * One object is loaded per node; both programs find their endpoint by the
 * veth's ifindex in axo_lxc, so attaching a new pod needs no compile or load.
 * Per packet: parse -> conntrack (established and replies pass) -> on a new
 * connection, ipcache + policy -> conntrack entry or drop -> events.
 *
 * Verdicts are TC_ACT_OK (let the kernel route the packet) or TC_ACT_SHOT.
 * Interfaces that are not endpoints, non-IPv4 and non-first fragments pass.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "lib/conntrack.h"
#include "lib/drop.h"
#include "lib/events.h"
#include "lib/ipcache.h"
#include "lib/parse.h"
#include "lib/policy.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* ifindex of the host-side veth */
	__type(value, struct lxc_info);
	__uint(max_entries, LXC_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lxc SEC(".maps");

/* Drop with reason code ret (negative DROP_*): DROP event, counter, SHOT.
 * Not inlined: drops are the slow path, and as a subprogram its prototype
 * puts struct event into the object's BTF, which the layout test reads. */
static __noinline int drop_packet(struct event *e, int ret)
{
	__u16 reason = (__u16)-ret;

	metric_add(reason, e->len);
	event_send(e, EVENT_DROP, VERDICT_DROPPED, reason);
	return TC_ACT_SHOT;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	__u32 ifindex = skb->ifindex;
	const struct lxc_info *ep;
	struct policy_decision d;
	struct ct_value *ct;
	struct flow f = {};
	struct event e;
	__u32 peer_ip, peer_identity;
	__u8 ct_state;
	__u64 now;
	int ret;

	ep = bpf_map_lookup_elem(&axo_lxc, &ifindex);
	if (!ep)
		return TC_ACT_OK;
	ret = parse_ipv4(skb, &f);
	if (ret == PARSE_PASS)
		return TC_ACT_OK;
	event_init(&e, ep, dir, &f, ifindex, skb->len);
	if (ret < 0) {
		event_identities(&e, dir, ep->identity, 0);
		return drop_packet(&e, ret);
	}

	peer_ip = dir == DIR_EGRESS ? f.daddr : f.saddr;
	now = bpf_ktime_get_ns();
	ct = ct_lookup(&f, dir, now, &ct_state);
	if (ct) {
		if (ct_update(ct, ct_state, &f, now, skb->len)) {
			/* The peer's identity is only needed for the event. */
			event_identities(&e, dir, ep->identity, ipcache_identity(peer_ip));
			e.ct_state = ct_state;
			event_send(&e, EVENT_TRACE, VERDICT_FORWARDED, 0);
		}
		return TC_ACT_OK;
	}

	/* A new connection: decide it. */
	peer_identity = ipcache_identity(peer_ip);
	event_identities(&e, dir, ep->identity, peer_identity);
	e.ct_state = CT_NEW;
	policy_check(ep, dir, peer_identity, peer_ip, f.proto, f.dport, &d);
	e.cookie = d.cookie;
	if (d.verdict == VERDICT_DROPPED) {
		event_send(&e, EVENT_POLICY_VERDICT, VERDICT_DROPPED, (__u16)-d.drop);
		return drop_packet(&e, d.drop);
	}
	ret = ct_create(&f, dir, dir == DIR_EGRESS ? ep->identity : peer_identity, ep->ep_id, now,
			skb->len);
	if (ret < 0) {
		/* Policy allowed it, but without an entry the reply would be
		 * judged as a new connection: drop, as Cilium does. */
		return drop_packet(&e, ret);
	}
	event_send(&e, EVENT_POLICY_VERDICT, d.verdict, (__u16)-d.drop);
	event_send(&e, EVENT_TRACE, VERDICT_FORWARDED, 0);
	return TC_ACT_OK;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
