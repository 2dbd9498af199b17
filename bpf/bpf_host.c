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
 * The translation (maps, backend choice, NAT entries) is lib/nodeport.h,
 * shared with the XDP program (bpf_xdp.c) that runs before this one when
 * acceleration is on and passes here what it cannot serve.
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

#include "lib/nodeport.h"

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

/* A new flow to a frontend: choose a backend, write both NAT entries. */
static __always_inline int new_flow(struct __sk_buff *skb, const struct pkt *p)
{
	const struct lb_backend *be = 0;
	struct lb_nat fwd = {};
	int ret = nodeport_select(&p->t, &be);

	if (!ret)
		return TC_ACT_OK;
	if (ret < 0 || !be || nodeport_commit(&p->t, be, &fwd))
		return TC_ACT_SHOT;
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
