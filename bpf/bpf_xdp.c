// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * NodePort acceleration (docs/services.md): XDP on the node's underlay device,
 * before bpf_host.c's tc programs, with the same translation (lib/nodeport.h)
 * and the same NAT entries, so a flow may start in either and continue in the
 * other.
 *
 *   a flow to a remote backend (SNAT + DNAT) and its replies: translated,
 *     MACs from the FIB, and sent out of the FIB's device (XDP_REDIRECT, back
 *     out of this one in the lab), never entering the stack;
 *   a flow to a backend on this node: translated here (DNAT), then passed to
 *     the stack, which delivers it to the pod (policy and all);
 *   what XDP cannot serve (no neighbour entry yet, IP options, fragments,
 *     DSR flows, whose IP option tc inserts): passed untranslated, and tc
 *     does the whole job;
 *   a packet to a frontend without a usable backend: dropped here with its
 *     drop event under --service-no-backend-response drop; otherwise passed to
 *     tc, which answers it with ICMP (bpf_host.c). Building the error needs
 *     the packet resized and sent back, which tc already does; doing it here
 *     too would double that code for one packet per refused connection.
 *
 * axo_xdp_stats counts each outcome per CPU, so tests and `status` can tell
 * that XDP served the packets.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/nodeport.h"

#define XDP_STAT_FORWARDED 0 /* translated and sent out in XDP */
#define XDP_STAT_TO_STACK 1  /* translated (local backend), then XDP_PASS */
#define XDP_STAT_TO_TC 2     /* a service packet left to tc */
#define XDP_STAT_DROPPED 3   /* no backend, in drop mode (reject mode: to tc) */
#define XDP_STAT_MAX 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, XDP_STAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_xdp_stats SEC(".maps");

static __always_inline int count(__u32 what, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&axo_xdp_stats, &what);

	if (n)
		*n += 1;
	return verdict;
}

/* One's-complement checksum update (RFC 1624) for a changed 16-bit or 32-bit
 * field; the values are as stored in the packet, so byte order cancels out. */
static __always_inline __u16 csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline void csum_update(__u16 *sum, __u32 from, __u32 to)
{
	__u32 s = (__u16)~*sum;

	s += (~from & 0xffff) + (~from >> 16) + (to & 0xffff) + (to >> 16);
	*sum = ~csum_fold(s);
}

struct xpkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	__u16 *ports;
	__u16 *l4sum; /* 0: a UDP datagram without a checksum */
	__u8 tcp_flags;
	struct lb_nat_key t;
};

static __always_inline int parse(struct xdp_md *ctx, struct xpkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return -1;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return -1;
	if (ip->frag_off & bpf_htons(0x3fff))
		return -1;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(ip + 1);

		if ((void *)(th + 1) > end)
			return -1;
		p->l4sum = &th->check;
		p->tcp_flags = ((__u8 *)th)[13];
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(ip + 1);

		if ((void *)(uh + 1) > end)
			return -1;
		p->l4sum = uh->check ? &uh->check : 0;
	} else {
		return -1;
	}
	p->eth = eth;
	p->ip = ip;
	p->ports = (void *)(ip + 1);
	p->t.saddr = ip->saddr;
	p->t.daddr = ip->daddr;
	p->t.sport = p->ports[0];
	p->t.dport = p->ports[1];
	p->t.proto = ip->protocol;
	return 0;
}

static __always_inline void rewrite(struct xpkt *p, const struct lb_nat *n)
{
	struct iphdr *ip = p->ip;

	if (p->l4sum) {
		/* Addresses are in the TCP/UDP pseudo-header, ports in the header. */
		csum_update(p->l4sum, p->t.saddr, n->saddr);
		csum_update(p->l4sum, p->t.daddr, n->daddr);
		csum_update(p->l4sum, p->t.sport, n->sport);
		csum_update(p->l4sum, p->t.dport, n->dport);
		if (p->t.proto == IPPROTO_UDP && !*p->l4sum)
			*p->l4sum = 0xffff; /* zero means "no checksum" in UDP */
	}
	csum_update(&ip->check, ip->saddr, n->saddr);
	csum_update(&ip->check, ip->daddr, n->daddr);
	ip->saddr = n->saddr;
	ip->daddr = n->daddr;
	p->ports[0] = n->sport;
	p->ports[1] = n->dport;
}

/* Where a translated packet to daddr leaves: 0 and fib filled, or -1 when XDP
 * cannot send it (no neighbour entry yet: tc's bpf_redirect_neigh resolves it). */
static __always_inline int route(struct xdp_md *ctx, const struct xpkt *p, __u32 saddr,
				 __u32 daddr, struct bpf_fib_lookup *fib)
{
	fib->family = 2; /* AF_INET */
	fib->l4_protocol = p->t.proto;
	fib->tot_len = bpf_ntohs(p->ip->tot_len);
	fib->ipv4_src = saddr;
	fib->ipv4_dst = daddr;
	fib->ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, fib, sizeof(*fib), BPF_FIB_LOOKUP_OUTPUT) !=
	    BPF_FIB_LKUP_RET_SUCCESS)
		return -1;
	return 0;
}

static __always_inline int send(struct xdp_md *ctx, struct xpkt *p, const struct lb_nat *n,
				const struct bpf_fib_lookup *fib)
{
	struct iphdr *ip = p->ip;

	rewrite(p, n);
	if (ip->ttl <= 1)
		return count(XDP_STAT_TO_TC, XDP_PASS); /* the stack answers with ICMP */
	/* TTL - 1: the checksum's high byte goes down by one. */
	csum_update(&ip->check, bpf_htons((__u16)ip->ttl << 8), bpf_htons((__u16)(ip->ttl - 1) << 8));
	ip->ttl--;
	__builtin_memcpy(p->eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, fib->smac, ETH_ALEN);
	count(XDP_STAT_FORWARDED, 0);
	/* XDP_REDIRECT even back out of the same device, never XDP_TX: a veth
	 * schedules its peer's NAPI after XDP_TX only when the peer runs XDP
	 * itself, so with a GRO-only peer XDP_TX frames wait in its ring until
	 * other traffic arrives; ndo_xdp_xmit (redirect) flushes every batch. */
	return bpf_redirect(fib->ifindex, 0);
}

SEC("xdp")
int xdp_nodeport(struct xdp_md *ctx)
{
	struct bpf_fib_lookup fib = {};
	const struct lb_backend *be = 0;
	const struct lb_nat *found;
	struct lb_nat n = {}, stale = {};
	struct xpkt p = {};
	int ret;

	if (parse(ctx, &p))
		return XDP_PASS;
	found = nodeport_lookup(&p.t, p.tcp_flags, &stale);
	if (found) {
		if (!(found->flags & NAT_F_INGRESS))
			return XDP_PASS;
		n = *found;
		if (n.flags & NAT_F_DSR) /* inserting the IP option is tc's job */
			return count(XDP_STAT_TO_TC, XDP_PASS);
		if (!(n.flags & NAT_F_REDIRECT)) {
			rewrite(&p, &n);
			return count(XDP_STAT_TO_STACK, XDP_PASS);
		}
		if (route(ctx, &p, n.saddr, n.daddr, &fib))
			return count(XDP_STAT_TO_TC, XDP_PASS);
		return send(ctx, &p, &n, &fib);
	}
	ret = nodeport_select(&p.t, &be);
	if (!ret)
		return XDP_PASS;
	if (ret < 0 || !be) {
		if (nodeport_rejects(&p.t, p.tcp_flags))
			return count(XDP_STAT_TO_TC, XDP_PASS);
		nodeport_no_backend_event(&p.t, p.tcp_flags, ctx->ingress_ifindex,
					  ctx->data_end - ctx->data);
		return count(XDP_STAT_DROPPED, XDP_DROP);
	}
	if (!(be->flags & LB_BE_LOCAL)) {
		__u32 zero = 0, *node_ip = bpf_map_lookup_elem(&axo_lb_node, &zero);

		/* Route first: a flow XDP cannot send is left whole to tc. */
		if (!node_ip || nodeport_dsr() || route(ctx, &p, *node_ip, be->ip, &fib))
			return count(XDP_STAT_TO_TC, XDP_PASS);
	}
	if (nodeport_commit(&p.t, p.tcp_flags, &stale, be, &n))
		return count(XDP_STAT_DROPPED, XDP_DROP);
	if (!(n.flags & NAT_F_REDIRECT)) {
		rewrite(&p, &n);
		return count(XDP_STAT_TO_STACK, XDP_PASS);
	}
	return send(ctx, &p, &n, &fib);
}

char _license[] SEC("license") = "Dual BSD/GPL";
