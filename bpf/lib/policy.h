/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Policy lookup for a new connection (docs/datapath.md, "Policy lookup").
 *
 * Three keys can name a port set for (endpoint, direction, peer): the peer's
 * identity, ANY identity, and the peer's address (longest ipBlock prefix).
 * Each set is looked up for (proto, dport); a deny from any of them wins,
 * else an allow from any, else the endpoint's default for the direction.
 * Lookups and the decision are split so the decision is unit-testable
 * (bpf/tests/policy_test.c).
 */
#ifndef AXONEME_LIB_POLICY_H
#define AXONEME_LIB_POLICY_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "axoneme.h"
#include "drop.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct policy_key);
	__type(value, __u32); /* set_id */
	__uint(max_entries, POLICY_MAP_SIZE);
	/* Allocate on insert: 1M preallocated elements would pin ~64 MiB per node. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_cidr_key);
	__type(value, __u32); /* set_id */
	__uint(max_entries, POLICY_CIDR_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_policy_cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ports_key);
	__type(value, struct ports_value);
	__uint(max_entries, PORTS_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_policy_ports SEC(".maps");

/* What the lookups found: whether any set allowed / denied, and the first
 * set that did (reported as the event's cookie). */
struct policy_match {
	__u32 allow_set, deny_set;
	__u8 allow, deny;
};

/* The outcome for one new connection. */
struct policy_decision {
	int drop;	/* 0, or the DROP_* code policy gives (set even when audited) */
	__u32 cookie;	/* the set_id that decided, 0 if the default did */
	__u8 verdict;	/* VERDICT_FORWARDED, VERDICT_DROPPED or VERDICT_AUDIT */
};

static __always_inline void policy_match_add(struct policy_match *m, __u32 set_id, __u8 verdict)
{
	if (verdict == PORTS_DENY && !m->deny) {
		m->deny = 1;
		m->deny_set = set_id;
	} else if (verdict == PORTS_ALLOW && !m->allow) {
		m->allow = 1;
		m->allow_set = set_id;
	}
}

/* Pure: the decision from what matched and the endpoint's flags for the
 * direction. Audit turns a would-be drop into a pass reported as AUDIT. */
static __always_inline void policy_decide(const struct policy_match *m, bool enforced,
					  bool audit, struct policy_decision *d)
{
	d->drop = 0;
	d->cookie = 0;
	d->verdict = VERDICT_FORWARDED;
	if (m->deny) {
		d->drop = DROP_POLICY_DENY;
		d->cookie = m->deny_set;
	} else if (m->allow) {
		d->cookie = m->allow_set;
	} else if (enforced) {
		d->drop = DROP_POLICY_DENIED;
	}
	if (d->drop)
		d->verdict = audit ? VERDICT_AUDIT : VERDICT_DROPPED;
}

/* Verdict of one port set for (proto, port): 0 (no match), PORTS_ALLOW or PORTS_DENY. */
static __always_inline __u8 ports_verdict(__u32 set_id, __u8 proto, __u16 port)
{
	struct ports_key key = {
		.prefixlen = 64,
		.set_id = bpf_htonl(set_id),
		.proto = proto,
		.port = port,
	};
	struct ports_value *v = bpf_map_lookup_elem(&axo_policy_ports, &key);

	return v ? v->verdict : 0;
}

static __always_inline void policy_match_identity(struct policy_match *m, __u32 identity,
						  __u16 ep_id, __u8 dir, __u8 proto, __u16 dport)
{
	struct policy_key key = { .identity = identity, .ep_id = ep_id, .dir = dir };
	__u32 *set_id = bpf_map_lookup_elem(&axo_policy, &key);

	if (set_id)
		policy_match_add(m, *set_id, ports_verdict(*set_id, proto, dport));
}

/* Decide a new connection of endpoint ep in direction dir with a peer of
 * the given identity and address (NBO); dport NBO. */
static __always_inline void policy_check(const struct lxc_info *ep, __u8 dir, __u32 identity,
					 __u32 peer_ip, __u8 proto, __u16 dport,
					 struct policy_decision *d)
{
	struct policy_match m = {};
	__u16 ep_id = (__u16)ep->ep_id;
	struct policy_cidr_key ckey = {
		.prefixlen = 64,
		.ep_id = bpf_htons(ep_id),
		.dir = dir,
		.ip = peer_ip,
	};
	__u32 *set_id;
	bool enforced, audit;

	policy_match_identity(&m, identity, ep_id, dir, proto, dport);
	if (identity != IDENTITY_ANY)
		policy_match_identity(&m, IDENTITY_ANY, ep_id, dir, proto, dport);
	set_id = bpf_map_lookup_elem(&axo_policy_cidr, &ckey);
	if (set_id)
		policy_match_add(&m, *set_id, ports_verdict(*set_id, proto, dport));

	if (dir == DIR_INGRESS) {
		enforced = ep->flags & LXC_F_INGRESS_ENFORCED;
		audit = ep->flags & LXC_F_INGRESS_AUDIT;
	} else {
		enforced = ep->flags & LXC_F_EGRESS_ENFORCED;
		audit = ep->flags & LXC_F_EGRESS_AUDIT;
	}
	policy_decide(&m, enforced, audit, d);
}

#endif /* AXONEME_LIB_POLICY_H */
