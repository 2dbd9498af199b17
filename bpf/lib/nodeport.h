/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * North-south service translation shared by tc (bpf_host.c) and XDP
 * (bpf_xdp.c): the per-flow NAT map, the node's SNAT address, and the choice
 * of a backend for a new flow with both of its NAT entries. The hooks differ
 * only in how they rewrite and send the packet.
 *
 *   axo_lb_nat   LRU {5-tuple} -> what its addresses become, and where it applies
 *   axo_lb_node  [0] -> this node's underlay address (NBO), the SNAT source
 *   axo_lb_mode  [0] -> LB_MODE_* bits: the agent's NodePort settings
 *
 * A packet to a frontend without a usable backend is a drop event with
 * Cilium's reason (DROP_NO_SERVICE, Hubble's SERVICE_BACKEND_NOT_FOUND, 158);
 * unless the agent runs with --service-no-backend-response drop, tc answers it
 * with an ICMP port unreachable first (bpf_host.c), so clients fail at once.
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

#define NAT_F_INGRESS (1U << 0)	 /* apply on the way in (XDP, tc ingress) */
#define NAT_F_EGRESS (1U << 1)	 /* apply in tc egress (replies of local backends) */
#define NAT_F_REDIRECT (1U << 2) /* then send it back out of the device */
#define NAT_F_DSR (1U << 3)	 /* DSR: carry the frontend to the backend's node (tc only) */
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

/* axo_lb_nat value: what the packet's addresses become. 16 bytes. */
struct lb_nat {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u32 flags; /* NAT_F_* */
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
 * A backend on this node gets the destination rewritten only (it sees the
 * client; replies are translated in tc egress); a remote one is SNATed to this
 * node so its replies come back here, or, in DSR mode, keeps the client's
 * address and replies straight from its node (which restores the frontend from
 * the IP option, so no reverse entry here). 0, or -1 (no node address, no free port). */
static __always_inline int nodeport_commit(const struct lb_nat_key *t,
					   const struct lb_backend *be, struct lb_nat *fwd)
{
	struct lb_nat_key rkey = {};
	struct lb_nat rev = {};
	__u32 zero = 0, *node_ip;
	int i;

	node_ip = bpf_map_lookup_elem(&axo_lb_node, &zero);
	if (!node_ip)
		return -1;
	fwd->daddr = be->ip;
	fwd->dport = be->port;
	fwd->flags = NAT_F_INGRESS;
	rev.saddr = t->daddr;
	rev.sport = t->dport;
	rev.daddr = t->saddr;
	rev.dport = t->sport;
	rkey.saddr = be->ip;
	rkey.sport = be->port;
	rkey.proto = t->proto;
	if (be->flags & LB_BE_LOCAL) {
		fwd->saddr = t->saddr;
		rev.flags = NAT_F_EGRESS;
	} else if (nodeport_dsr()) {
		fwd->saddr = t->saddr;
		fwd->sport = t->sport;
		fwd->flags |= NAT_F_REDIRECT | NAT_F_DSR;
		return bpf_map_update_elem(&axo_lb_nat, t, fwd, BPF_ANY) ? -1 : 0;
	} else {
		fwd->saddr = *node_ip;
		fwd->flags |= NAT_F_REDIRECT;
		rev.flags = NAT_F_INGRESS | NAT_F_REDIRECT;
	}
	rkey.daddr = fwd->saddr;
	for (i = 0; i < NAT_TRIES; i++) {
		/* SNAT keeps the client's port unless another flow holds it already.
		 * A local backend's reply tuple is the client's own: an entry there is
		 * an older flow with this tuple (through another frontend of the
		 * backend), over as this one starts, so it is replaced. */
		fwd->sport = (be->flags & LB_BE_LOCAL) ? t->sport
						       : bpf_htons(bpf_ntohs(t->sport) + i * 7919);
		rkey.dport = fwd->sport;
		if (!bpf_map_update_elem(&axo_lb_nat, &rkey, &rev,
					 (be->flags & LB_BE_LOCAL) ? BPF_ANY : BPF_NOEXIST))
			break;
	}
	if (i == NAT_TRIES)
		return -1;
	bpf_map_update_elem(&axo_lb_nat, t, fwd, BPF_ANY);
	return 0;
}

#endif /* AXONEME_LIB_NODEPORT_H */
