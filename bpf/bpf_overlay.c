// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * from_overlay: tc ingress of the node's VXLAN collect_md device
 * (docs/datapath.md, "Routing"). The sender put its endpoint's security
 * identity in the VNI; the receiving endpoint's ingress policy is decided by
 * that identity, never by the (forgeable) inner source address.
 *
 * Host routing bpf and a local destination: the destination's ingress policy
 * runs here and the packet goes straight into the pod (redirect_peer), the
 * reply of a translated SCTP flow with its frontend restored (lib/lbxlate.h).
 * Otherwise the identity rides in skb->mark through the stack to
 * to_container, and the frame is marked for this host (its inner destination
 * MAC is the sending node's router MAC).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "lib/drop.h"
#include "lib/enforce.h"
#include "lib/forward.h"
#include "lib/frag.h"
#include "lib/lbxlate.h"
#include "lib/lxc.h"
#include "lib/parse.h"

/* Events of packets no endpoint owns yet carry endpoint 0. */
static const struct lxc_info no_endpoint;

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	const struct lxc_info *dst;
	__u32 dst_ifindex = 0, identity;
	struct flow f = {};
	int ret;

	ret = parse_ipv4(skb, &f);
	if (ret == PARSE_FRAGMENT || (ret == 0 && f.frag))
		ret = frag_track(&f);
	if (ret < 0)
		return drop_early(&no_endpoint, DIR_INGRESS, &f, skb->ifindex, skb->len, 0, ret);
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return drop_early(&no_endpoint, DIR_INGRESS, &f, skb->ifindex, skb->len, 0,
				  DROP_ERROR_RETRIEVING_TUNNEL_KEY);
	identity = key.tunnel_id & 0xFFFFFF;
	metric_add(METRIC_TUNNEL_RX, skb->len);
	if (ret == 0 && (config_flags() & CFG_HOST_ROUTING_BPF)) {
		dst = lxc_by_ip(f.daddr, &dst_ifindex);
		if (dst) {
			if (enforce(dst, dst_ifindex, DIR_INGRESS, &f, skb->len, identity))
				return TC_ACT_SHOT;
			ret = redirect_local(skb, dst, dst_ifindex);
			/* Only now is to_container surely skipped: it restores the
			 * frontend itself when the stack delivers. */
			if (ret == TC_ACT_REDIRECT)
				ret = lb_xlate_rev(skb, &f) ?: TC_ACT_REDIRECT;
			if (ret < 0)
				return drop_early(dst, DIR_INGRESS, &f, dst_ifindex, skb->len,
						  dst->identity, ret);
			if (ret != TC_ACT_OK)
				return ret;
		}
	}
	skb->mark = mark_from_identity(identity);
	bpf_skb_change_type(skb, PACKET_HOST);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
