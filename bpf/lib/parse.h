/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing: the IPv4 5-tuple and TCP flags of one skb.
 *
 * Headers are copied with bpf_skb_load_bytes rather than read through
 * skb->data: it works the same on linear and paged skbs (GSO super-packets
 * from veth), needs no pull or pointer revalidation, and the copy of at most
 * 34 bytes is cheap next to the map lookups that follow.
 */
#ifndef AXONEME_LIB_PARSE_H
#define AXONEME_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "axoneme.h"
#include "drop.h"

/* parse_ipv4() result for packets the datapath does not police: not IPv4
 * (ARP; IPv6 has no policy yet) or a non-first fragment (no L4 header;
 * documented gap, Cilium tracks fragments in a map). */
#define PARSE_PASS 1

/* TCP header byte 13 */
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define IP_FRAG_OFFSET_MASK 0x1fff

/* One packet's flow as the policy and conntrack see it. */
struct flow {
	__u32 saddr, daddr; /* NBO */
	__u16 sport, dport; /* NBO; 0 for ICMP and protocols without ports */
	__u8 proto;
	__u8 tcp_flags; /* 0 unless TCP */
	__u16 pad;
};

/* Fill *f from the skb. Returns 0, PARSE_PASS, or DROP_INVALID_PACKET_DROPPED
 * for a truncated or malformed IPv4/L4 header. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct flow *f)
{
	struct iphdr ip;
	__u8 l4[14]; /* TCP: ports at 0, flags at 13; UDP/SCTP: ports at 0 */
	__u32 off;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PARSE_PASS;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return DROP_INVALID_PACKET_DROPPED;
	if (ip.version != 4 || ip.ihl < 5)
		return DROP_INVALID_PACKET_DROPPED;

	f->saddr = ip.saddr;
	f->daddr = ip.daddr;
	f->proto = ip.protocol;
	if (ip.frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return PARSE_PASS;

	off = ETH_HLEN + ip.ihl * 4;
	switch (ip.protocol) {
	case IPPROTO_TCP:
		if (bpf_skb_load_bytes(skb, off, l4, 14) < 0)
			return DROP_INVALID_PACKET_DROPPED;
		f->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if (bpf_skb_load_bytes(skb, off, l4, 4) < 0)
			return DROP_INVALID_PACKET_DROPPED;
		break;
	default:
		/* ICMP and the rest: ports 0 (docs/datapath.md) */
		return 0;
	}
	__builtin_memcpy(&f->sport, &l4[0], 2);
	__builtin_memcpy(&f->dport, &l4[2], 2);
	return 0;
}

#endif /* AXONEME_LIB_PARSE_H */
