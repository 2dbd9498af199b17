// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * North-south service traffic on the node's underlay device (docs/services.md):
 * NodePort, LoadBalancer and external-IP frontends reached from outside.
 *
 *   from_netdev  tc ingress: a new flow to a frontend picks a backend and is
 *                translated; later packets follow the flow's NAT entry; replies
 *                of SNATed flows are translated back and sent out again
 *   to_netdev    tc egress:  replies of local backends, translated back
 *
 * A backend on this node is reached with the destination rewritten only, so
 * it sees the client's address (externalTrafficPolicy: Local needs nothing
 * more). A backend on another node also gets the source rewritten to this
 * node (SNAT), so its replies come back here to be translated. The kernel
 * routes every translated packet (ip_forward); translated replies of SNATed
 * flows leave through bpf_redirect_neigh.
 *
 * Everything else passes untouched (TC_ACT_OK).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/lb.h"

#define NAT_F_INGRESS (1U << 0)	 /* apply in from_netdev */
#define NAT_F_EGRESS (1U << 1)	 /* apply in to_netdev */
#define NAT_F_REDIRECT (1U << 2) /* then send it back out of the device */
#define NAT_TRIES 8

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

struct pkt {
	struct lb_nat_key t;
	__u32 l3;	/* offset of the IPv4 header */
	__u32 l4;	/* offset of the L4 header */
	__u32 csum_off; /* offset of the L4 checksum */
	__u32 csum_flags;
};

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u16 *ports;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return -1;
	if (ip->frag_off & bpf_htons(0x3fff)) /* fragments: no ports to match */
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;
	ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return -1;
	p->t.saddr = ip->saddr;
	p->t.daddr = ip->daddr;
	p->t.sport = ports[0];
	p->t.dport = ports[1];
	p->t.proto = ip->protocol;
	p->l3 = sizeof(*eth);
	p->l4 = sizeof(*eth) + sizeof(*ip);
	if (ip->protocol == IPPROTO_TCP) {
		p->csum_off = p->l4 + offsetof(struct tcphdr, check);
		p->csum_flags = 0;
	} else {
		p->csum_off = p->l4 + offsetof(struct udphdr, check);
		p->csum_flags = BPF_F_MARK_MANGLED_0; /* a zero UDP checksum stays zero */
	}
	return 0;
}

static __always_inline int set_addr(struct __sk_buff *skb, const struct pkt *p, __u32 off,
				    __u32 old, __u32 new)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum_off, old, new,
				BPF_F_PSEUDO_HDR | p->csum_flags | sizeof(new)) ||
	    bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), old, new, sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, p->l3 + off, &new, sizeof(new), 0);
}

static __always_inline int set_port(struct __sk_buff *skb, const struct pkt *p, __u32 off,
				    __u16 old, __u16 new)
{
	if (old == new)
		return 0;
	if (bpf_l4_csum_replace(skb, p->csum_off, old, new, p->csum_flags | sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, p->l4 + off, &new, sizeof(new), 0);
}

/* Send a translated packet on towards daddr, past the input path: a packet whose
 * source is now one of this node's addresses would be dropped there as a martian. */
static __always_inline int forward(struct __sk_buff *skb, __u32 daddr)
{
	struct bpf_fib_lookup fib = {
		.family = 2, /* AF_INET */
		.ipv4_dst = daddr,
		.ifindex = skb->ifindex,
	};
	int ret = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);

	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_SHOT;
	return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
}

static __always_inline int rewrite(struct __sk_buff *skb, const struct pkt *p,
				   const struct lb_nat *n)
{
	if (set_addr(skb, p, offsetof(struct iphdr, saddr), p->t.saddr, n->saddr) ||
	    set_addr(skb, p, offsetof(struct iphdr, daddr), p->t.daddr, n->daddr) ||
	    set_port(skb, p, 0, p->t.sport, n->sport) || set_port(skb, p, 2, p->t.dport, n->dport))
		return TC_ACT_SHOT;
	if (n->flags & NAT_F_REDIRECT)
		return forward(skb, n->daddr);
	return TC_ACT_OK;
}

static __always_inline __u32 pick(const struct lb_svc *svc, const struct lb_nat_key *t)
{
	if (svc->flags & LB_F_MAGLEV) {
		const struct lb_maglev *table = bpf_map_lookup_elem(&axo_lb_maglev, &svc->svc_id);
		__u32 idx;

		if (!table || !svc->maglev_size)
			return 0;
		idx = lb_hash(t->saddr, ((__u32)t->dport << 16) | t->sport, t->daddr) %
		      svc->maglev_size;
		asm volatile("" : "+r"(idx));
		if (idx >= LB_MAGLEV_MAX)
			return 0;
		return table->backend_ids[idx];
	} else {
		struct lb_slot_key slot = {
			.svc_id = svc->svc_id,
			.slot = bpf_get_prandom_u32() % svc->count + 1,
		};
		__u32 *id = bpf_map_lookup_elem(&axo_lb_slot, &slot);

		return id ? *id : 0;
	}
}

/* A new flow to a frontend: choose a backend, write both NAT entries. */
static __always_inline int new_flow(struct __sk_buff *skb, const struct pkt *p)
{
	struct lb_svc_key key = {.vip = p->t.daddr, .dport = p->t.dport, .proto = p->t.proto};
	const struct lb_backend *be;
	const struct lb_svc *svc;
	struct lb_nat_key rkey = {};
	struct lb_nat fwd = {}, rev = {};
	__u32 zero = 0, id, *node_ip;
	int i;

	svc = bpf_map_lookup_elem(&axo_lb_svc, &key);
	if (!svc || !(svc->flags & (LB_F_NODEPORT | LB_F_EXTERNAL_IP | LB_F_LOADBALANCER)))
		return TC_ACT_OK;
	if (!svc->count)
		return TC_ACT_SHOT; /* no backend (here, for externalTrafficPolicy: Local) */
	id = pick(svc, &p->t);
	be = id ? bpf_map_lookup_elem(&axo_lb_backend, &id) : 0;
	node_ip = bpf_map_lookup_elem(&axo_lb_node, &zero);
	if (!be || !node_ip || be->svc_id != svc->svc_id)
		return TC_ACT_SHOT;
	fwd.daddr = be->ip;
	fwd.dport = be->port;
	fwd.flags = NAT_F_INGRESS;
	rev.saddr = p->t.daddr;
	rev.sport = p->t.dport;
	rev.daddr = p->t.saddr;
	rev.dport = p->t.sport;
	rkey.saddr = be->ip;
	rkey.sport = be->port;
	rkey.proto = p->t.proto;
	if (be->flags & LB_BE_LOCAL) {
		/* Destination only: the backend sees the client; replies leave by to_netdev. */
		fwd.saddr = p->t.saddr;
		fwd.sport = p->t.sport;
		rev.flags = NAT_F_EGRESS;
	} else {
		fwd.saddr = *node_ip;
		fwd.flags |= NAT_F_REDIRECT;
		rev.flags = NAT_F_INGRESS | NAT_F_REDIRECT;
	}
	rkey.daddr = fwd.saddr;
	for (i = 0; i < NAT_TRIES; i++) {
		/* SNAT keeps the client's port unless another flow holds it already. */
		fwd.sport = (be->flags & LB_BE_LOCAL) ? p->t.sport
						       : bpf_htons(bpf_ntohs(p->t.sport) + i * 7919);
		rkey.dport = fwd.sport;
		if (!bpf_map_update_elem(&axo_lb_nat, &rkey, &rev, BPF_NOEXIST))
			break;
	}
	if (i == NAT_TRIES)
		return TC_ACT_SHOT;
	bpf_map_update_elem(&axo_lb_nat, &p->t, &fwd, BPF_ANY);
	return rewrite(skb, p, &fwd);
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	const struct lb_nat *n;
	struct pkt p = {};

	if (parse(skb, &p))
		return TC_ACT_OK;
	n = bpf_map_lookup_elem(&axo_lb_nat, &p.t);
	if (n && (n->flags & NAT_F_INGRESS)) {
		struct lb_nat copy = *n;

		return rewrite(skb, &p, &copy);
	}
	return new_flow(skb, &p);
}

SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	const struct lb_nat *n;
	struct pkt p = {};

	if (parse(skb, &p))
		return TC_ACT_OK;
	n = bpf_map_lookup_elem(&axo_lb_nat, &p.t);
	if (n && (n->flags & NAT_F_EGRESS)) {
		struct lb_nat copy = *n;

		return rewrite(skb, &p, &copy);
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
