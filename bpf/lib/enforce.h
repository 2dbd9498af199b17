/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One endpoint's policy and conntrack for one packet (docs/datapath.md,
 * "Per packet"): conntrack first (established and replies pass), then on a
 * new connection ipcache + policy -> conntrack entry or drop, with events.
 * Used by to_container/from_container for their own endpoint, and inline by
 * local delivery and the overlay for the destination endpoint (whose
 * to_container hook bpf_redirect_peer skips).
 */
#ifndef AXONEME_LIB_ENFORCE_H
#define AXONEME_LIB_ENFORCE_H

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "conntrack.h"
#include "drop.h"
#include "events.h"
#include "ipcache.h"
#include "parse.h"
#include "policy.h"

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

/* Report a drop that happened before any endpoint's policy ran. */
static __always_inline int drop_early(const struct lxc_info *ep, __u8 dir, const struct flow *f,
				      __u32 ifindex, __u32 len, __u32 ep_identity, int ret)
{
	struct event e;

	event_init(&e, ep, dir, f, ifindex, len);
	event_identities(&e, dir, ep_identity, 0);
	return drop_packet(&e, ret);
}

/* Endpoint ep's verdict on the packet f in direction dir. peer_identity is
 * the peer's identity when the caller knows it better than the ipcache does
 * (local sender, tunnel VNI), else 0. Returns TC_ACT_OK or TC_ACT_SHOT (the
 * drop is reported). */
static __always_inline int enforce(const struct lxc_info *ep, __u32 ifindex, __u8 dir,
				   const struct flow *f, __u32 len, __u32 peer_identity)
{
	struct policy_decision d;
	struct ct_value *ct;
	struct event e;
	__u32 peer_ip = dir == DIR_EGRESS ? f->daddr : f->saddr;
	__u8 ct_state;
	__u64 now;
	int ret;

	event_init(&e, ep, dir, f, ifindex, len);
	now = bpf_ktime_get_ns();
	/* An ICMP error about a tracked connection (port unreachable, fragmentation
	 * needed, TTL exceeded...) belongs to it: passes as "related", traced. */
	if (f->icmp_error && ct_lookup_related(f, dir, now)) {
		if (!peer_identity)
			peer_identity = ipcache_identity(peer_ip);
		event_identities(&e, dir, ep->identity, peer_identity);
		e.ct_state = CT_RELATED;
		event_send(&e, EVENT_TRACE, VERDICT_FORWARDED, 0);
		return TC_ACT_OK;
	}
	ct = ct_lookup(f, dir, now, &ct_state);
	if (ct) {
		if (ct_update(ct, ct_state, f, now, len)) {
			/* The peer's identity is only needed for the event. */
			if (!peer_identity)
				peer_identity = ipcache_identity(peer_ip);
			event_identities(&e, dir, ep->identity, peer_identity);
			e.ct_state = ct_state;
			event_send(&e, EVENT_TRACE, VERDICT_FORWARDED, 0);
		}
		return TC_ACT_OK;
	}

	/* A new connection: decide it. */
	if (!peer_identity)
		peer_identity = ipcache_identity(peer_ip);
	event_identities(&e, dir, ep->identity, peer_identity);
	e.ct_state = CT_NEW;
	policy_check(ep, dir, peer_identity, peer_ip, f->proto, f->dport, &d);
	e.cookie = d.cookie;
	if (d.verdict == VERDICT_DROPPED) {
		event_send(&e, EVENT_POLICY_VERDICT, VERDICT_DROPPED, (__u16)-d.drop);
		return drop_packet(&e, d.drop);
	}
	ret = ct_create(f, dir, dir == DIR_EGRESS ? ep->identity : peer_identity, ep->ep_id, now,
			len);
	if (ret < 0) {
		/* Policy allowed it, but without an entry the reply would be
		 * judged as a new connection: drop, as Cilium does. */
		return drop_packet(&e, ret);
	}
	event_send(&e, EVENT_POLICY_VERDICT, d.verdict, (__u16)-d.drop);
	event_send(&e, EVENT_TRACE, VERDICT_FORWARDED, 0);
	return TC_ACT_OK;
}

#endif /* AXONEME_LIB_ENFORCE_H */
