/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding without the kernel stack (docs/datapath.md, "Routing"):
 *
 *   local delivery   L2 rewrite + TTL, bpf_redirect_peer into the pod's netns
 *   tunnel           bpf_skb_set_tunnel_key (VNI = source identity) + redirect
 *                    to the VXLAN collect_md device
 *   native (bpf)     bpf_fib_lookup + TTL + bpf_redirect_neigh out of the
 *                    underlay device
 *
 * Each returns a TC action; whenever it cannot forward (TTL about to expire,
 * no route, no MAC) it returns TC_ACT_OK so the stack does the job.
 * Successful redirects are counted in axo_metrics (indexes below 130 are
 * not drop reasons; see METRIC_* and MetricsMap).
 */
#ifndef AXONEME_LIB_FORWARD_H
#define AXONEME_LIB_FORWARD_H

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "axoneme.h"
#include "drop.h"
#include "events.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* axo_metrics indexes of forwarding counters (packets, bytes). */
#define METRIC_REDIRECT_PEER 1
#define METRIC_TUNNEL_TX 2
#define METRIC_TUNNEL_RX 3
#define METRIC_REDIRECT_NEIGH 4

#define IP_TTL_OFF (ETH_HLEN + offsetof(struct iphdr, ttl))
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))

/* Decrement the IPv4 TTL as a router would. 0 done, 1 the TTL would expire
 * (the stack must answer with ICMP time exceeded), <0 a write failed. */
static __always_inline int ttl_decrement(struct __sk_buff *skb)
{
	__u8 word[2]; /* ttl, protocol: one 16-bit word of the header checksum */
	__u16 old, new;

	if (bpf_skb_load_bytes(skb, IP_TTL_OFF, word, 2) < 0)
		return DROP_INVALID_PACKET_DROPPED;
	if (word[0] <= 1)
		return 1;
	__builtin_memcpy(&old, word, 2);
	word[0]--;
	__builtin_memcpy(&new, word, 2);
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, 2) < 0 ||
	    bpf_skb_store_bytes(skb, IP_TTL_OFF, word, 1, 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	return 0;
}

static __always_inline bool mac_is_zero(const __u8 *mac)
{
	return !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]);
}

/* Deliver to local endpoint dst (whose ingress policy the caller has run)
 * straight into its netns: as routing would, the TTL drops by one and the
 * frame goes from the pod's host veth to the pod. Negative: drop reason. */
static __always_inline int redirect_local(struct __sk_buff *skb, const struct lxc_info *dst,
					  __u32 dst_ifindex)
{
	int ret;

	if (mac_is_zero(dst->mac) || mac_is_zero(dst->host_mac))
		return TC_ACT_OK;
	ret = ttl_decrement(skb);
	if (ret)
		return ret > 0 ? TC_ACT_OK : ret;
	if (bpf_skb_store_bytes(skb, 0, dst->mac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, dst->host_mac, ETH_ALEN, 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	metric_add(METRIC_REDIRECT_PEER, skb->len);
	return bpf_redirect_peer(dst_ifindex, 0);
}

/* Encapsulate towards the node at tunnel_ip (NBO), carrying identity in the
 * VNI, through the VXLAN collect_md device. Negative: drop reason. */
static __always_inline int redirect_tunnel(struct __sk_buff *skb, __u32 tunnel_ip,
					   __u32 identity, __u32 tunnel_ifindex)
{
	struct bpf_tunnel_key key = {};

	if (!tunnel_ifindex)
		return TC_ACT_OK;
	key.remote_ipv4 = bpf_ntohl(tunnel_ip);
	key.tunnel_id = identity & 0xFFFFFF;
	key.tunnel_ttl = 64;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	metric_add(METRIC_TUNNEL_TX, skb->len);
	return bpf_redirect(tunnel_ifindex, 0);
}

/* Route without the stack: FIB lookup, TTL, then the neighbour subsystem
 * fills the MACs on the way out of the egress device. Negative: drop reason. */
static __always_inline int redirect_fib(struct __sk_buff *skb, __u32 saddr, __u32 daddr)
{
	struct bpf_fib_lookup p = {};
	struct bpf_redir_neigh nh = {};
	int ret;

	p.family = AF_INET;
	p.ipv4_src = saddr;
	p.ipv4_dst = daddr;
	p.ifindex = skb->ifindex;
	ret = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_OK; /* not forwardable here: let the stack decide */
	ret = ttl_decrement(skb);
	if (ret)
		return ret > 0 ? TC_ACT_OK : ret;
	nh.nh_family = AF_INET;
	nh.ipv4_nh = p.ipv4_dst; /* the lookup left the next hop here */
	metric_add(METRIC_REDIRECT_NEIGH, skb->len);
	return bpf_redirect_neigh(p.ifindex, &nh, sizeof(nh), 0);
}

#endif /* AXONEME_LIB_FORWARD_H */
