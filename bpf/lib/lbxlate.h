/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-packet service translation at the endpoint, for SCTP (docs/services.md,
 * "SCTP"). TCP and UDP never come here: the socket LB (bpf_sock.c) translates
 * them at connect()/sendmsg(), but SCTP has no such hook that every client
 * passes (this kernel has no SCTP sockets at all; pods speak it over raw
 * sockets), so, as Cilium's per-packet LB does for SCTP, the pod's packets are
 * translated at tc:
 *
 *   lb_xlate_fwd  from_container, before the pod's egress policy: a packet to
 *                 a frontend in axo_lb_svc gets its flow's backend as the
 *                 destination, so policy and conntrack see the backend
 *   lb_xlate_rev  wherever a packet enters its pod, after the pod's ingress
 *                 policy: the backend's reply gets the frontend as its source
 *                 again (to_container; the inline local delivery of forward()
 *                 and of bpf_overlay.c, which skip to_container)
 *
 *   axo_lb_xlate  LRU {5-tuple} -> what one address of the packet becomes:
 *                 LB_XLATE_FWD  client -> frontend: the destination, the
 *                               flow's backend (id kept to check it still
 *                               belongs to the service)
 *                 LB_XLATE_REV  backend -> client: the source, the frontend
 *
 * A flow (an SCTP association: the client's address and port) keeps its
 * backend for as long as its entry lives and the backend stays in the
 * service, terminating or not; a new flow chooses with lib/lb.h's selection
 * (random or Maglev, ClientIP affinity by the client's address).
 *
 * Only addresses are rewritten, with the IPv4 header checksum: SCTP's CRC32c
 * covers no pseudo-header, so an address rewrite needs no L4 change, but a
 * port rewrite would need the CRC over the whole packet recomputed. So a
 * backend whose port differs from the frontend's (targetPort != port) is
 * refused with Cilium's reason for it, DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM
 * (Cilium's DROP_CSUM_L4, 154). A frontend without a usable backend drops with
 * DROP_SERVICE_BACKEND_NOT_FOUND (158), as the rest of the LB does.
 */
#ifndef AXONEME_LIB_LBXLATE_H
#define AXONEME_LIB_LBXLATE_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#include "drop.h"
#include "lb.h"
#include "parse.h"

#define LB_XLATE_MAP_SIZE 65536

/* lb_xlate.dir */
#define LB_XLATE_FWD 1
#define LB_XLATE_REV 2

#define LB_IP_SADDR_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define LB_IP_DADDR_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define LB_IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))

/* axo_lb_xlate key: a packet's 5-tuple as it is on the wire. 16 bytes. */
struct lb_xlate_key {
	__u32 saddr; /* NBO */
	__u32 daddr; /* NBO */
	__u16 sport; /* NBO */
	__u16 dport; /* NBO */
	__u8 proto;
	__u8 pad[3];
};

/* axo_lb_xlate value. 12 bytes. */
struct lb_xlate {
	__u32 addr;	  /* NBO: FWD the new destination (backend), REV the new source (frontend) */
	__u32 backend_id; /* FWD: host order, the backend's id in axo_lb_backend */
	__u8 dir;	  /* LB_XLATE_* */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_xlate_key);
	__type(value, struct lb_xlate);
	__uint(max_entries, LB_XLATE_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_xlate SEC(".maps");

static __always_inline void lb_xlate_key_of(struct lb_xlate_key *k, const struct flow *f)
{
	k->saddr = f->saddr;
	k->daddr = f->daddr;
	k->sport = f->sport;
	k->dport = f->dport;
	k->proto = f->proto;
}

/* Replace the IPv4 address at off (old -> new), fixing the header checksum. */
static __always_inline int lb_xlate_store(struct __sk_buff *skb, __u32 off, __u32 old, __u32 new)
{
	if (bpf_l3_csum_replace(skb, LB_IP_CSUM_OFF, old, new, 4) < 0 ||
	    bpf_skb_store_bytes(skb, off, &new, 4, 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	return 0;
}

/* The backend an existing flow keeps: still in the service (terminating is
 * fine, the association lives on it) and still at the address it had. */
static __always_inline const struct lb_backend *lb_xlate_kept(const struct lb_xlate *x,
							      const struct lb_svc *svc)
{
	const struct lb_backend *be;
	__u32 id = x->backend_id;

	if (x->dir != LB_XLATE_FWD)
		return 0;
	be = bpf_map_lookup_elem(&axo_lb_backend, &id);
	if (!be || be->svc_id != svc->svc_id || be->ip != x->addr)
		return 0;
	return be;
}

/* A pod's SCTP packet f (the caller checked the protocol), before the pod's
 * egress policy. A packet to a service frontend goes to its flow's backend:
 * the destination is rewritten in the packet and in *f. 0: translated, or not
 * a frontend (untouched); <0: drop reason. Frontends are looked up as the
 * socket LB does for in-cluster clients (the internal twin of a two-scope
 * frontend), so cluster IPs, external IPs and LoadBalancer addresses are served. */
static __always_inline int lb_xlate_fwd(struct __sk_buff *skb, struct flow *f)
{
	struct lb_svc_key skey = {.vip = f->daddr, .dport = f->dport, .proto = f->proto};
	struct lb_xlate_key key = {}, rkey = {};
	struct lb_xlate fwd = {}, rev = {};
	const struct lb_backend *be = 0;
	const struct lb_svc *svc;
	const struct lb_xlate *x;
	__u32 id = 0;

	svc = bpf_map_lookup_elem(&axo_lb_svc, &skey);
	if (!svc)
		return 0;
	if (svc->flags & LB_F_TWO_SCOPES) {
		skey.scope = LB_SCOPE_INT;
		svc = bpf_map_lookup_elem(&axo_lb_svc, &skey);
		if (!svc)
			return DROP_SERVICE_BACKEND_NOT_FOUND; /* the agent is mid-update */
	}
	lb_xlate_key_of(&key, f);
	x = bpf_map_lookup_elem(&axo_lb_xlate, &key);
	if (x)
		be = lb_xlate_kept(x, svc);
	if (!be) {
		if (!svc->count)
			return DROP_SERVICE_BACKEND_NOT_FOUND;
		be = lb_select(svc, LB_AFFINITY_CLIENT_IP | f->saddr, f->saddr, f->daddr, f->sport,
			       f->dport, &id);
		if (!be)
			return DROP_SERVICE_BACKEND_NOT_FOUND;
		if (be->port != f->dport)
			return DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM; /* no SCTP port rewrite */
		/* The reply's entry first: once the request can go, its answer
		 * must find the frontend to restore. */
		rkey.saddr = be->ip;
		rkey.daddr = f->saddr;
		rkey.sport = be->port;
		rkey.dport = f->sport;
		rkey.proto = f->proto;
		rev.addr = f->daddr;
		rev.dir = LB_XLATE_REV;
		fwd.addr = be->ip;
		fwd.backend_id = id;
		fwd.dir = LB_XLATE_FWD;
		if (bpf_map_update_elem(&axo_lb_xlate, &rkey, &rev, BPF_ANY) < 0 ||
		    bpf_map_update_elem(&axo_lb_xlate, &key, &fwd, BPF_ANY) < 0)
			return DROP_CT_MAP_INSERTION_FAILED;
	}
	if (lb_xlate_store(skb, LB_IP_DADDR_OFF, f->daddr, be->ip) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	f->daddr = be->ip;
	return 0;
}

/* A packet f about to enter its pod, after the pod's ingress policy: the
 * reply of a translated SCTP flow gets the frontend back as its source (what
 * the client sent to). 0 (translated or not such a reply) or a drop reason.
 * TCP and UDP leave at the protocol check. */
static __always_inline int lb_xlate_rev(struct __sk_buff *skb, const struct flow *f)
{
	struct lb_xlate_key key = {};
	const struct lb_xlate *x;

	if (f->proto != IPPROTO_SCTP)
		return 0;
	lb_xlate_key_of(&key, f);
	x = bpf_map_lookup_elem(&axo_lb_xlate, &key);
	if (!x || x->dir != LB_XLATE_REV)
		return 0;
	return lb_xlate_store(skb, LB_IP_SADDR_OFF, f->saddr, x->addr);
}

#endif /* AXONEME_LIB_LBXLATE_H */
