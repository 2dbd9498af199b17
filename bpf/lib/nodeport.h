/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * North-south service translation shared by tc (bpf_host.c) and XDP
 * (bpf_xdp.c): the per-flow NAT map, the node's SNAT address, and the choice
 * of a backend for a new flow with both of its NAT entries. The hooks differ
 * only in how they rewrite and send the packet.
 *
 *   axo_lb_nat   LRU {5-tuple} -> what its addresses become, and where it applies
 *                (a flow's forward entry, keyed by the client's tuple, and its
 *                reverse entry, keyed by the backend's reply tuple)
 *   axo_lb_node  [0] -> this node's underlay address (NBO), the SNAT source
 *   axo_lb_mode  [0] -> LB_MODE_* bits: the agent's NodePort settings
 *
 * A packet to a frontend without a usable backend is a drop event with
 * Cilium's reason (DROP_NO_SERVICE, Hubble's SERVICE_BACKEND_NOT_FOUND, 158);
 * unless the agent runs with --service-no-backend-response drop, tc answers it
 * with an ICMP port unreachable first (bpf_host.c), so clients fail at once.
 *
 * NAT entries live as conntrack entries do (lib/lifetime.h, Cilium's
 * lifetimes): 60 s for a TCP flow still in its handshake or any other flow,
 * 6 h for an established TCP flow, 10 s once a FIN or RST passed. A hit
 * refreshes last_seen on both entries of the pair (written at most once a
 * second). An expired entry, or a closing one hit by a new SYN (a reused
 * 4-tuple), counts as absent: the flow chooses a backend again and both of its
 * entries are rewritten. The agent deletes expired entries (datapath/ctgc.py)
 * and the entries of backends that left every service (lbwriter.py).
 */
#ifndef AXONEME_LIB_NODEPORT_H
#define AXONEME_LIB_NODEPORT_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "drop.h"
#include "events.h"
#include "ipcache.h"
#include "lb.h"
#include "lifetime.h"

#define NAT_F_INGRESS (1U << 0)	 /* apply on the way in (XDP, tc ingress) */
#define NAT_F_EGRESS (1U << 1)	 /* apply in tc egress (replies of local backends) */
#define NAT_F_REDIRECT (1U << 2) /* then send it back out of the device */
#define NAT_F_DSR (1U << 3)	 /* DSR: carry the frontend to the backend's node (tc only) */
#define NAT_F_ESTABLISHED (1U << 4) /* a TCP segment without SYN passed: past the handshake */
#define NAT_F_CLOSING (1U << 5)	    /* a TCP FIN or RST passed */
#define NAT_TRIES 8

/* DSR: the frontend travels to the backend's node in an IPv4 option after the
 * base header (Cilium's layout: copied flag, class 0, number 26). 8 bytes. */
#define DSR_OPT_TYPE 0x9a
#define DSR_OPT_LEN 8
struct dsr_opt {
	__u8 type;
	__u8 len;
	__u16 port; /* NBO */
	__u32 addr; /* NBO */
};

/* axo_lb_nat key: a packet's 5-tuple. 16 bytes. */
struct lb_nat_key {
	__u32 saddr; /* NBO */
	__u32 daddr; /* NBO */
	__u16 sport; /* NBO */
	__u16 dport; /* NBO */
	__u8 proto;
	__u8 pad[3];
};

/* axo_lb_nat value: what the packet's addresses become, and when the flow was
 * last seen. 20 bytes, no implicit padding. */
struct lb_nat {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 flags;	 /* NAT_F_* */
	__u32 last_seen; /* seconds of bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_nat_key);
	__type(value, struct lb_nat);
	__uint(max_entries, 262144);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_nat SEC(".maps");

/* [0]: this node's underlay address (NBO), the SNAT source. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_node SEC(".maps");

/* axo_lb_mode[0] bits. Zero is Cilium's defaults: SNAT, and reject. */
#define LB_MODE_DSR (1U << 0)		  /* --bpf-lb-mode dsr: DSR for remote backends */
#define LB_MODE_NO_BACKEND_DROP (1U << 1) /* --service-no-backend-response drop */

/* [0]: LB_MODE_* bits. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_mode SEC(".maps");

static __always_inline __u32 nodeport_mode(void)
{
	__u32 zero = 0, *mode = bpf_map_lookup_elem(&axo_lb_mode, &zero);

	return mode ? *mode : 0;
}

static __always_inline int nodeport_dsr(void)
{
	return !!(nodeport_mode() & LB_MODE_DSR);
}

static __always_inline __u32 nat_now(void)
{
	return (__u32)(bpf_ktime_get_ns() / NSEC_PER_SEC);
}

/* Seconds an entry lives after its last packet (as ct_lifetime). */
static __always_inline __u32 nat_lifetime(const struct lb_nat *n, __u8 proto)
{
	if (n->flags & NAT_F_CLOSING)
		return CT_CLOSE_TIMEOUT / NSEC_PER_SEC;
	if (proto != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP / NSEC_PER_SEC;
	return (n->flags & NAT_F_ESTABLISHED) ? CT_LIFETIME_TCP / NSEC_PER_SEC
					      : CT_SYN_TIMEOUT / NSEC_PER_SEC;
}

static __always_inline int nat_expired(const struct lb_nat *n, __u8 proto, __u32 now)
{
	/* Another CPU may have stored a slightly later second. */
	return now > n->last_seen && now - n->last_seen > nat_lifetime(n, proto);
}

/* The NAT_F_* state flags a packet with these TCP flags brings. */
static __always_inline __u32 nat_state_flags(__u8 proto, __u8 tcp_flags)
{
	__u32 f = 0;

	if (proto != IPPROTO_TCP)
		return 0;
	if (tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		f |= NAT_F_CLOSING;
	if (!(tcp_flags & TCP_FLAG_SYN))
		f |= NAT_F_ESTABLISHED;
	return f;
}

static __always_inline int nat_pure_syn(__u8 proto, __u8 tcp_flags)
{
	return proto == IPPROTO_TCP && (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* The other entry of k's pair (forward <-> reverse), if it still is k's: its
 * key is k's value reversed, and its value k reversed. */
static __always_inline struct lb_nat *nat_partner(const struct lb_nat_key *k,
						  const struct lb_nat *n)
{
	struct lb_nat_key o = {
		.saddr = n->daddr,
		.daddr = n->saddr,
		.sport = n->dport,
		.dport = n->sport,
		.proto = k->proto,
	};
	struct lb_nat *m = bpf_map_lookup_elem(&axo_lb_nat, &o);

	if (m && m->daddr == k->saddr && m->dport == k->sport && m->saddr == k->daddr &&
	    m->sport == k->dport)
		return m;
	return 0;
}

/* The packet's live NAT entry, refreshed with its partner; NULL when there is
 * none or it is dead (expired, or closing and hit by a new SYN), a dead one
 * copied to *stale (flags non-zero) for nodeport_commit to replace. */
static __always_inline struct lb_nat *nodeport_lookup(const struct lb_nat_key *t, __u8 tcp_flags,
						      struct lb_nat *stale)
{
	struct lb_nat *n = bpf_map_lookup_elem(&axo_lb_nat, t), *m;
	__u32 now, set;

	if (!n)
		return 0;
	now = nat_now();
	if (nat_expired(n, t->proto, now) ||
	    ((n->flags & NAT_F_CLOSING) && nat_pure_syn(t->proto, tcp_flags))) {
		*stale = *n;
		return 0;
	}
	/* Write only on change: a stored word dirties the line for every CPU. */
	set = nat_state_flags(t->proto, tcp_flags);
	if (n->last_seen == now && (n->flags & set) == set)
		return n;
	n->last_seen = now;
	n->flags |= set;
	m = nat_partner(t, n);
	if (m) {
		m->last_seen = now;
		m->flags |= set;
	}
	return n;
}

/* Whether a packet to a frontend without a backend is answered (ICMP port
 * unreachable: a TCP SYN or a UDP datagram's first fragment) or only dropped. */
static __always_inline int nodeport_rejects(const struct lb_nat_key *t, __u8 tcp_flags)
{
	if (nodeport_mode() & LB_MODE_NO_BACKEND_DROP)
		return 0;
	if (t->proto == IPPROTO_TCP) /* a SYN, not a stray segment of some old flow */
		return (tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) == TCP_FLAG_SYN;
	return t->proto == IPPROTO_UDP;
}

/* The drop event of a packet to a frontend without a usable backend, whether
 * or not it is answered: the flow is DROPPED (SERVICE_BACKEND_NOT_FOUND) on the
 * node's device, from the client's identity to the frontend's. */
static __always_inline void nodeport_no_backend_event(const struct lb_nat_key *t, __u8 tcp_flags,
						      __u32 ifindex, __u32 len)
{
	struct event e = {};

	e.dir = DIR_INGRESS;
	e.proto = t->proto;
	e.saddr = t->saddr;
	e.daddr = t->daddr;
	e.sport = t->sport;
	e.dport = t->dport;
	e.tcp_flags = tcp_flags;
	e.src_identity = ipcache_identity(t->saddr);
	e.dst_identity = ipcache_identity(t->daddr);
	e.ifindex = ifindex;
	e.len = len;
	event_send(&e, EVENT_DROP, VERDICT_DROPPED, -DROP_SERVICE_BACKEND_NOT_FOUND);
}

/* A packet to a NodePort / LoadBalancer / external-IP frontend: its backend.
 * 0: not a frontend (let it pass); <0: no usable backend (DROP_* code); >0:
 * *be is set. A backend that vanished under the agent's update counts as none. */
static __always_inline int nodeport_select(const struct lb_nat_key *t,
					   const struct lb_backend **be)
{
	struct lb_svc_key key = {.vip = t->daddr, .dport = t->dport, .proto = t->proto};
	const struct lb_svc *svc;
	__u32 id = 0;

	svc = bpf_map_lookup_elem(&axo_lb_svc, &key);
	if (!svc || !(svc->flags & (LB_F_NODEPORT | LB_F_EXTERNAL_IP | LB_F_LOADBALANCER)))
		return 0;
	if (!svc->count)
		return DROP_SERVICE_BACKEND_NOT_FOUND; /* none (here: externalTrafficPolicy Local) */
	/* ClientIP: keyed by the client's address, as Cilium's north-south
	 * affinity (and the socket LB's by netns cookie) in the same map. */
	*be = lb_select(svc, LB_AFFINITY_CLIENT_IP | t->saddr, t->saddr, t->daddr, t->sport,
			t->dport, &id);
	if (!*be)
		return DROP_SERVICE_BACKEND_NOT_FOUND;
	return 1;
}

/* Write both NAT entries of a new flow to be; *fwd is the request's translation.
 * stale (flags 0: none) is the flow's dead forward entry, whose reverse entry
 * goes first so that a reused 4-tuple may take its port again.
 * A backend on this node gets the destination rewritten only (it sees the
 * client; replies are translated in tc egress); a remote one is SNATed to this
 * node so its replies come back here, or, in DSR mode, keeps the client's
 * address and replies straight from its node (which restores the frontend from
 * the IP option, so no reverse entry here). 0, or -1 (no node address, no free port). */
static __always_inline int nodeport_commit(const struct lb_nat_key *t, __u8 tcp_flags,
					   const struct lb_nat *stale, const struct lb_backend *be,
					   struct lb_nat *fwd)
{
	__u32 zero = 0, *node_ip, now = nat_now(), state = nat_state_flags(t->proto, tcp_flags);
	struct lb_nat_key rkey = {};
	struct lb_nat rev = {};
	struct lb_nat *old;
	int i;

	node_ip = bpf_map_lookup_elem(&axo_lb_node, &zero);
	if (!node_ip)
		return -1;
	if (stale->flags && (stale->flags & NAT_F_INGRESS) && !(stale->flags & NAT_F_DSR)) {
		struct lb_nat_key okey = {
			.saddr = stale->daddr,
			.daddr = stale->saddr,
			.sport = stale->dport,
			.dport = stale->sport,
			.proto = t->proto,
		};

		if (nat_partner(t, stale))
			bpf_map_delete_elem(&axo_lb_nat, &okey);
	}
	fwd->daddr = be->ip;
	fwd->dport = be->port;
	fwd->flags = NAT_F_INGRESS | state;
	fwd->last_seen = now;
	rev.last_seen = now;
	rev.saddr = t->daddr;
	rev.sport = t->dport;
	rev.daddr = t->saddr;
	rev.dport = t->sport;
	rkey.saddr = be->ip;
	rkey.sport = be->port;
	rkey.proto = t->proto;
	if (be->flags & LB_BE_LOCAL) {
		fwd->saddr = t->saddr;
		rev.flags = NAT_F_EGRESS | state;
	} else if (nodeport_dsr()) {
		fwd->saddr = t->saddr;
		fwd->sport = t->sport;
		fwd->flags |= NAT_F_REDIRECT | NAT_F_DSR;
		return bpf_map_update_elem(&axo_lb_nat, t, fwd, BPF_ANY) ? -1 : 0;
	} else {
		fwd->saddr = *node_ip;
		fwd->flags |= NAT_F_REDIRECT;
		rev.flags = NAT_F_INGRESS | NAT_F_REDIRECT | state;
	}
	rkey.daddr = fwd->saddr;
	for (i = 0; i < NAT_TRIES; i++) {
		/* SNAT keeps the client's port unless another flow holds it already.
		 * A local backend's reply tuple is the client's own: an entry there is
		 * an older flow with this tuple (through another frontend of the
		 * backend), over as this one starts, so it is replaced. An expired
		 * entry is free: no flow holds its port any more. */
		fwd->sport = (be->flags & LB_BE_LOCAL) ? t->sport
						       : bpf_htons(bpf_ntohs(t->sport) + i * 7919);
		rkey.dport = fwd->sport;
		if (!bpf_map_update_elem(&axo_lb_nat, &rkey, &rev,
					 (be->flags & LB_BE_LOCAL) ? BPF_ANY : BPF_NOEXIST))
			break;
		old = bpf_map_lookup_elem(&axo_lb_nat, &rkey);
		if ((!old || nat_expired(old, t->proto, now)) &&
		    !bpf_map_update_elem(&axo_lb_nat, &rkey, &rev, BPF_ANY))
			break;
	}
	if (i == NAT_TRIES)
		return -1;
	bpf_map_update_elem(&axo_lb_nat, t, fwd, BPF_ANY);
	return 0;
}

#endif /* AXONEME_LIB_NODEPORT_H */
