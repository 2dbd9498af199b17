// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * North-south service traffic on the node's underlay device (docs/services.md):
 * NodePort, LoadBalancer and external-IP frontends reached from outside.
 *
 *   from_netdev  tc ingress: a new flow to a frontend picks a backend and is
 *                translated; later packets follow the flow's NAT entry; replies
 *                of SNATed flows are translated back and sent out again
 *   to_netdev    tc egress:  replies of local backends (and of DSR flows whose
 *                frontend is on another node), translated back
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
 * DSR (--bpf-lb-mode dsr) instead keeps the client's address towards a remote
 * backend and adds an IPv4 option with the frontend; the backend's node
 * (dsr_restore, first thing in from_netdev) records the frontend for the
 * replies, which to_netdev there translates on their way straight to the client.
 *
 * A packet to a frontend without a usable backend (none at all, or none on
 * this node under externalTrafficPolicy: Local) is a drop event
 * (SERVICE_BACKEND_NOT_FOUND); a TCP SYN or UDP datagram is first answered with
 * an ICMP port unreachable from the frontend's address (reject_no_backend), as
 * Cilium's --service-no-backend-response reject does, so the client fails at
 * once instead of timing out. XDP passes such packets here in reject mode.
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

#include "axoneme.h"
#include "lib/nodeport.h"

struct pkt {
	struct lb_nat_key t;
	__u32 l3;	/* offset of the IPv4 header */
	__u32 l4;	/* offset of the L4 header */
	__u32 csum_off; /* offset of the L4 checksum */
	__u32 csum_flags;
	__u32 has_l4;	/* 0 for a non-first fragment: no ports or L4 checksum in it */
	__u8 tcp_flags; /* tcphdr byte 13 (0: not TCP, or no L4 header) */
};

/* Ports of fragmented datagrams crossing the node's device, by their first
 * fragment (as lib/frag.h does for pods): later fragments get the translation
 * of their datagram's flow, addresses only. Without it a 4K UDP datagram to a
 * NodePort would lose every fragment but the first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ipv4_frag_key);
	__type(value, struct ipv4_frag_ports);
	__uint(max_entries, FRAG_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_frag SEC(".maps");

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
	struct ipv4_frag_key fkey = {};

	if ((void *)(ip + 1) > end || ip->ihl != 5)
		return -1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return -1;
	p->t.saddr = ip->saddr;
	p->t.daddr = ip->daddr;
	p->t.proto = ip->protocol;
	p->l3 = sizeof(*eth);
	p->l4 = sizeof(*eth) + sizeof(*ip);
	fkey.saddr = ip->saddr;
	fkey.daddr = ip->daddr;
	fkey.id = ip->id;
	fkey.proto = ip->protocol;
	if (ip->frag_off & bpf_htons(0x1fff)) { /* a later fragment: its first's ports */
		const struct ipv4_frag_ports *seen = bpf_map_lookup_elem(&axo_lb_frag, &fkey);

		if (!seen)
			return -1;
		p->t.sport = seen->sport;
		p->t.dport = seen->dport;
		p->has_l4 = 0;
		return 0;
	}
	ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > end)
		return -1;
	p->t.sport = ports[0];
	p->t.dport = ports[1];
	p->has_l4 = 1;
	if (ip->frag_off & bpf_htons(0x2000)) { /* the first fragment (more follow) */
		struct ipv4_frag_ports v = {.sport = ports[0], .dport = ports[1]};

		bpf_map_update_elem(&axo_lb_frag, &fkey, &v, BPF_ANY);
	}
	if (ip->protocol == IPPROTO_TCP) {
		p->csum_off = p->l4 + offsetof(struct tcphdr, check);
		p->csum_flags = 0;
		if (bpf_skb_load_bytes(skb, p->l4 + 13, &p->tcp_flags, 1))
			return -1;
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
	/* The L4 checksum (in the first fragment) also covers the addresses. */
	if ((p->has_l4 && bpf_l4_csum_replace(skb, p->csum_off, old, new,
					      BPF_F_PSEUDO_HDR | p->csum_flags | sizeof(new))) ||
	    bpf_l3_csum_replace(skb, p->l3 + offsetof(struct iphdr, check), old, new, sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, p->l3 + off, &new, sizeof(new), 0);
}

static __always_inline int set_port(struct __sk_buff *skb, const struct pkt *p, __u32 off,
				    __u16 old, __u16 new)
{
	if (old == new || !p->has_l4)
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

/* The first 16-bit words of an IPv4 header: version/IHL + TOS, and total length. */
static __always_inline int ip_head(struct __sk_buff *skb, __u16 *w0, __u16 *tot_len)
{
	if (bpf_skb_load_bytes(skb, ETH_HLEN, w0, sizeof(*w0)) ||
	    bpf_skb_load_bytes(skb, ETH_HLEN + 2, tot_len, sizeof(*tot_len)))
		return -1;
	return 0;
}

/* Set IHL and total length, folding them and the option bytes (added: diff > 0
 * sized) into the header checksum. */
static __always_inline int ip_resize(struct __sk_buff *skb, __u16 w0, __u16 tot_len, __u16 nw0,
				     __u16 ntot, __s64 opt_sum)
{
	__u32 check = ETH_HLEN + offsetof(struct iphdr, check);

	if (bpf_l3_csum_replace(skb, check, w0, nw0, 2) ||
	    bpf_l3_csum_replace(skb, check, tot_len, ntot, 2) ||
	    bpf_l3_csum_replace(skb, check, 0, opt_sum, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &nw0, 2, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + 2, &ntot, 2, 0))
		return -1;
	return 0;
}

/* DSR on the frontend's node: the frontend into an IPv4 option after the header. */
static __always_inline int dsr_add(struct __sk_buff *skb, __u32 vip, __u16 vport)
{
	struct dsr_opt opt = {.type = DSR_OPT_TYPE, .len = DSR_OPT_LEN, .port = vport, .addr = vip};
	__u16 w0, tot_len;
	__s64 sum;

	if (ip_head(skb, &w0, &tot_len) ||
	    bpf_skb_adjust_room(skb, DSR_OPT_LEN, BPF_ADJ_ROOM_NET, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(struct iphdr), &opt, sizeof(opt), 0))
		return -1;
	sum = bpf_csum_diff(0, 0, (__be32 *)&opt, sizeof(opt), 0);
	if (sum < 0)
		return -1;
	/* IHL 5 -> 7 is +2 in the low nibble of the first byte (the high byte in NBO). */
	return ip_resize(skb, w0, tot_len, bpf_htons(bpf_ntohs(w0) + 0x0200),
			 bpf_htons(bpf_ntohs(tot_len) + DSR_OPT_LEN), sum);
}

/* DSR on the backend's node: a packet carrying the option gets a reverse entry
 * (its replies leave from here with the frontend as source, in to_netdev) and
 * loses the option. 1 if it was one, 0 if not, -1 to drop. */
static __always_inline int dsr_restore(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct lb_nat_key rkey = {};
	struct lb_nat rev = {}, *old;
	struct dsr_opt opt;
	struct iphdr *ip;
	__u16 *ports, w0, tot_len;
	__u8 tcp_flags = 0;
	__u32 now;
	__s64 sum;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 7 || (ip->frag_off & bpf_htons(0x3fff)))
		return 0;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 0;
	ports = (void *)ip + sizeof(*ip) + DSR_OPT_LEN;
	if ((void *)(ports + 2) > end)
		return 0;
	if (ip->protocol == IPPROTO_TCP) {
		if ((void *)ports + 14 > end)
			return 0;
		tcp_flags = ((__u8 *)ports)[13];
	}
	__builtin_memcpy(&opt, (void *)(ip + 1), sizeof(opt));
	if (opt.type != DSR_OPT_TYPE || opt.len != DSR_OPT_LEN)
		return 0;
	rkey.saddr = ip->daddr;
	rkey.daddr = ip->saddr;
	rkey.sport = ports[1];
	rkey.dport = ports[0];
	rkey.proto = ip->protocol;
	rev.saddr = opt.addr;
	rev.sport = opt.port;
	rev.daddr = ip->saddr;
	rev.dport = ports[0];
	now = nat_now();
	rev.flags = NAT_F_EGRESS | nat_state_flags(rkey.proto, tcp_flags);
	rev.last_seen = now;
	/* The flow's live entry is refreshed (written once a second at most);
	 * a new one, or one after a dead one, is written whole. */
	old = bpf_map_lookup_elem(&axo_lb_nat, &rkey);
	if (old && old->saddr == rev.saddr && old->sport == rev.sport && old->daddr == rev.daddr &&
	    old->dport == rev.dport && (old->flags & NAT_F_EGRESS) &&
	    !nat_expired(old, rkey.proto, now) &&
	    !((old->flags & NAT_F_CLOSING) && nat_pure_syn(rkey.proto, tcp_flags))) {
		if (old->last_seen != now || (old->flags & rev.flags) != rev.flags) {
			old->last_seen = now;
			old->flags |= rev.flags;
		}
	} else if (bpf_map_update_elem(&axo_lb_nat, &rkey, &rev, BPF_ANY)) {
		return -1;
	}
	sum = bpf_csum_diff((__be32 *)&opt, sizeof(opt), 0, 0, 0);
	if (sum < 0 || ip_head(skb, &w0, &tot_len) ||
	    ip_resize(skb, w0, tot_len, bpf_htons(bpf_ntohs(w0) - 0x0200),
		      bpf_htons(bpf_ntohs(tot_len) - DSR_OPT_LEN), sum) ||
	    bpf_skb_adjust_room(skb, -DSR_OPT_LEN, BPF_ADJ_ROOM_NET, 0))
		return -1;
	return 1;
}

static __always_inline int rewrite(struct __sk_buff *skb, const struct pkt *p,
				   const struct lb_nat *n)
{
	if (set_addr(skb, p, offsetof(struct iphdr, saddr), p->t.saddr, n->saddr) ||
	    set_addr(skb, p, offsetof(struct iphdr, daddr), p->t.daddr, n->daddr) ||
	    set_port(skb, p, 0, p->t.sport, n->sport) || set_port(skb, p, 2, p->t.dport, n->dport))
		return TC_ACT_SHOT;
	if ((n->flags & NAT_F_DSR) && dsr_add(skb, p->t.daddr, p->t.dport))
		return TC_ACT_SHOT;
	if (n->flags & NAT_F_REDIRECT)
		return forward(skb, n->daddr);
	return TC_ACT_OK;
}

/* The ICMP error after the Ethernet header: the offending datagram's IP header
 * and first 8 bytes of data are quoted, as RFC 792 asks. 56 bytes. */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
/* linux/icmp.h pulls in libc's socket headers, which a BPF build lacks. */
struct icmp_unreach {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 unused; /* zero for port unreachable */
};

struct icmp_reply {
	struct iphdr ip;
	struct icmp_unreach icmp;
	__u8 quoted[sizeof(struct iphdr) + 8];
};

static __always_inline __u16 csum_fold(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Turn the packet into an ICMP port unreachable from the frontend the client
 * dialled back to the client, and send it out of the device it came in by
 * (MACs swapped: the previous hop is the way back). -1 if it cannot be built. */
static __always_inline int reject_no_backend(struct __sk_buff *skb, const struct pkt *p)
{
	struct icmp_reply r = {};
	__u8 mac[2 * ETH_ALEN];
	__s64 sum;

	if (bpf_skb_load_bytes(skb, 0, mac, sizeof(mac)) ||
	    bpf_skb_load_bytes(skb, p->l3, r.quoted, sizeof(r.quoted)))
		return -1;
	r.icmp.type = ICMP_DEST_UNREACH;
	r.icmp.code = ICMP_PORT_UNREACH;
	sum = bpf_csum_diff(0, 0, (__be32 *)&r.icmp, sizeof(r.icmp) + sizeof(r.quoted), 0);
	if (sum < 0)
		return -1;
	r.icmp.checksum = csum_fold(sum);
	r.ip.version = 4;
	r.ip.ihl = 5;
	r.ip.tot_len = bpf_htons(sizeof(r));
	r.ip.ttl = 64; /* IPDEFTTL: a fresh datagram, as the kernel's own errors */
	r.ip.protocol = IPPROTO_ICMP;
	r.ip.saddr = p->t.daddr;
	r.ip.daddr = p->t.saddr;
	sum = bpf_csum_diff(0, 0, (__be32 *)&r.ip, sizeof(r.ip), 0);
	if (sum < 0)
		return -1;
	r.ip.check = csum_fold(sum);
	/* Trim (or pad) to the reply's size, then overwrite everything. */
	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(r), 0) ||
	    bpf_skb_store_bytes(skb, 0, mac + ETH_ALEN, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, mac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &r, sizeof(r), 0))
		return -1;
	return 0;
}

/* A packet to a frontend without a usable backend: a drop event, and the ICMP
 * answer when it deserves one. */
static __always_inline int no_backend(struct __sk_buff *skb, const struct pkt *p)
{
	nodeport_no_backend_event(&p->t, p->tcp_flags, skb->ifindex, skb->len);
	if (!p->has_l4 || !nodeport_rejects(&p->t, p->tcp_flags) || reject_no_backend(skb, p))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* A new flow to a frontend (or one whose entry is dead, *stale): choose a
 * backend, write both NAT entries. */
static __always_inline int new_flow(struct __sk_buff *skb, const struct pkt *p,
				    const struct lb_nat *stale)
{
	const struct lb_backend *be = 0;
	struct lb_nat fwd = {};
	int ret = nodeport_select(&p->t, &be);

	if (!ret)
		return TC_ACT_OK;
	if (ret < 0 || !be)
		return no_backend(skb, p);
	if (nodeport_commit(&p->t, p->tcp_flags, stale, be, &fwd))
		return TC_ACT_SHOT;
	return rewrite(skb, p, &fwd);
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	struct lb_nat stale = {};
	const struct lb_nat *n;
	struct pkt p = {};
	int dsr = dsr_restore(skb);

	if (dsr)
		return dsr > 0 ? TC_ACT_OK : TC_ACT_SHOT;
	if (parse(skb, &p))
		return TC_ACT_OK;
	n = nodeport_lookup(&p.t, p.tcp_flags, &stale);
	if (n && (n->flags & NAT_F_INGRESS)) {
		struct lb_nat copy = *n;

		return rewrite(skb, &p, &copy);
	}
	return new_flow(skb, &p, &stale);
}

SEC("tc")
int to_netdev(struct __sk_buff *skb)
{
	struct lb_nat stale = {};
	const struct lb_nat *n;
	struct pkt p = {};

	if (parse(skb, &p))
		return TC_ACT_OK;
	n = nodeport_lookup(&p.t, p.tcp_flags, &stale);
	if (n && (n->flags & NAT_F_EGRESS)) {
		struct lb_nat copy = *n;

		return rewrite(skb, &p, &copy);
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
