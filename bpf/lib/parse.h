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

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "axoneme.h"
#include "drop.h"

/* parse_ipv4() result for packets that are not IPv4 (ARP passes; the
 * endpoint programs drop IPv6 before parsing, pods are IPv4-only). */
#define PARSE_PASS 1
/* parse_ipv4() result for a non-first IPv4 fragment: no L4 header, so the
 * ports come from the first fragment (lib/frag.h); *f has the addresses,
 * protocol and IP id. */
#define PARSE_FRAGMENT 2

/* flow.frag */
#define FRAG_NONE 0
#define FRAG_FIRST 1 /* offset 0 with more fragments to come */
#define FRAG_LATER 2

/* TCP header byte 13 */
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define IP_FRAG_OFFSET_MASK 0x1fff
#define IP_FRAG_MORE 0x2000

/* One packet's flow as the policy and conntrack see it. */
struct flow {
	__u32 saddr, daddr; /* NBO */
	__u16 sport, dport; /* NBO; 0 for ICMP and protocols without ports */
	__u8 proto;
	__u8 tcp_flags; /* 0 unless TCP */
	__u16 ip_id;	/* NBO: the IPv4 identification (fragment tracking) */
	__u8 frag;	/* FRAG_* */
	__u8 icmp_error; /* 1: an ICMP error quoting inner_* */
	__u8 inner_proto;
	__u8 pad;
	__u32 inner_saddr, inner_daddr; /* NBO: the quoted datagram's tuple */
	__u16 inner_sport, inner_dport;
};

/* ICMPv4 error types that quote the datagram they are about (RFC 792):
 * destination unreachable, source quench, redirect, time exceeded,
 * parameter problem. */
static __always_inline bool icmp_is_error(__u8 type)
{
	return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

/* The quoted datagram of an ICMP error at off (its ICMP header): its
 * addresses, protocol and, for TCP/UDP/SCTP, ports. Not quoted well enough:
 * icmp_error stays 0 and the packet is policed as plain ICMP. */
static __always_inline void parse_icmp_error(struct __sk_buff *skb, __u32 off, struct flow *f)
{
	struct iphdr inner;
	__u8 type, ports[4];

	if (bpf_skb_load_bytes(skb, off, &type, 1) < 0 || !icmp_is_error(type))
		return;
	if (bpf_skb_load_bytes(skb, off + 8, &inner, sizeof(inner)) < 0 || inner.version != 4 ||
	    inner.ihl < 5)
		return;
	f->inner_saddr = inner.saddr;
	f->inner_daddr = inner.daddr;
	f->inner_proto = inner.protocol;
	if (inner.protocol == IPPROTO_TCP || inner.protocol == IPPROTO_UDP ||
	    inner.protocol == IPPROTO_SCTP) {
		if (bpf_skb_load_bytes(skb, off + 8 + inner.ihl * 4, ports, 4) < 0)
			return;
		__builtin_memcpy(&f->inner_sport, &ports[0], 2);
		__builtin_memcpy(&f->inner_dport, &ports[2], 2);
	}
	f->icmp_error = 1;
}

/* Fill *f from the skb. Returns 0, PARSE_PASS, PARSE_FRAGMENT, or
 * DROP_INVALID_PACKET_DROPPED for a truncated or malformed IPv4/L4 header. */
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
	f->ip_id = ip.id;
	if (ip.frag_off & bpf_htons(IP_FRAG_OFFSET_MASK)) {
		f->frag = FRAG_LATER;
		return PARSE_FRAGMENT;
	}
	if (ip.frag_off & bpf_htons(IP_FRAG_MORE))
		f->frag = FRAG_FIRST;

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
	case IPPROTO_ICMP:
		parse_icmp_error(skb, off, f);
		return 0;
	default:
		/* ICMP and the rest: ports 0 (docs/datapath.md) */
		return 0;
	}
	__builtin_memcpy(&f->sport, &l4[0], 2);
	__builtin_memcpy(&f->dport, &l4[2], 2);
	return 0;
}

#endif /* AXONEME_LIB_PARSE_H */
