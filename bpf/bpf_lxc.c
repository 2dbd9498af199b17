// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The pod endpoint programs, attached to the host side of each pod's veth
 * (docs/datapath.md, "Programs"):
 *
 *   from_container  tc ingress: packets leaving the pod  -> egress policy, then
 *                   forwarding (local delivery, tunnel, FIB) or the stack
 *   to_container    tc egress:  packets entering the pod -> ingress policy
 *
 * One object is loaded per node; both programs find their endpoint by the
 * veth's ifindex in axo_lxc, so attaching a new pod needs no compile or load.
 * Per packet: parse -> conntrack (established and replies pass) -> on a new
 * connection, ipcache + policy -> conntrack entry or drop -> events
 * (lib/enforce.h). SCTP to a service frontend is translated to its backend
 * before the egress policy, and its replies back after the ingress policy
 * (lib/lbxlate.h); TCP and UDP have the socket LB instead.
 *
 * Verdicts are TC_ACT_OK (let the kernel route the packet), TC_ACT_SHOT or a
 * redirect. Interfaces that are not endpoints and ARP pass; IPv6 is dropped.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "lib/drop.h"
#include "lib/enforce.h"
#include "lib/forward.h"
#include "lib/frag.h"
#include "lib/ipcache.h"
#include "lib/lbxlate.h"
#include "lib/lxc.h"
#include "lib/parse.h"

/* Parse an endpoint's packet: IPv4 (fragments get their first fragment's
 * ports), ARP passes (PARSE_PASS), IPv6 is dropped: pods are IPv4-only, so
 * IPv6 between them could only bypass policy (Cilium drops it as well when
 * IPv6 is disabled). Returns 0, PARSE_PASS or a DROP_* code. */
static __always_inline int parse_endpoint(struct __sk_buff *skb, struct flow *f)
{
	int ret;

	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return DROP_UNSUPPORTED_L3_PROTOCOL;
	ret = parse_ipv4(skb, f);
	if (ret == PARSE_FRAGMENT || (ret == 0 && f->frag))
		return frag_track(f);
	return ret;
}

/* After the sender's egress policy allowed f: where does the packet go?
 * A local endpoint (host routing bpf): its ingress policy inline, then
 * redirect_peer (and, as to_container would, the reply of a translated SCTP
 * flow gets its frontend back, only once the packet surely skips
 * to_container). A remote endpoint: the tunnel (tunnel mode) or a FIB
 * redirect (native, host routing bpf). Everything else: the stack. */
static __always_inline int forward(struct __sk_buff *skb, const struct lxc_info *ep,
				   const struct flow *f)
{
	const struct datapath_config *cfg = datapath_config();
	const struct ipcache_value *remote;
	const struct lxc_info *dst;
	__u32 dst_ifindex = 0;
	int ret;

	if (!cfg || !cfg->flags)
		return TC_ACT_OK;
	if (cfg->flags & CFG_HOST_ROUTING_BPF) {
		dst = lxc_by_ip(f->daddr, &dst_ifindex);
		if (dst) {
			if (enforce(dst, dst_ifindex, DIR_INGRESS, f, skb->len, ep->identity))
				return TC_ACT_SHOT;
			ret = redirect_local(skb, dst, dst_ifindex);
			if (ret == TC_ACT_REDIRECT)
				ret = lb_xlate_rev(skb, f) ?: TC_ACT_REDIRECT;
			if (ret < 0)
				return drop_early(dst, DIR_INGRESS, f, dst_ifindex, skb->len,
						  dst->identity, ret);
			return ret;
		}
	}
	remote = ipcache_lookup(f->daddr);
	if (!remote || !remote->tunnel_ip)
		return TC_ACT_OK;
	if (cfg->flags & CFG_TUNNEL)
		ret = redirect_tunnel(skb, remote->tunnel_ip, ep->identity, cfg->tunnel_ifindex);
	else if (cfg->flags & CFG_HOST_ROUTING_BPF)
		ret = redirect_fib(skb, f->saddr, f->daddr);
	else
		return TC_ACT_OK;
	if (ret < 0)
		return drop_early(ep, DIR_EGRESS, f, skb->ifindex, skb->len, ep->identity, ret);
	return ret;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	const struct lxc_info *ep;
	struct flow f = {};
	int ret;

	ep = bpf_map_lookup_elem(&axo_lxc, &ifindex);
	if (!ep)
		return TC_ACT_OK;
	ret = parse_endpoint(skb, &f);
	if (ret == PARSE_PASS)
		return TC_ACT_OK;
	if (ret < 0)
		return drop_early(ep, DIR_EGRESS, &f, ifindex, skb->len, ep->identity, ret);
	/* A pod sends only from its own address: a forged source would borrow
	 * another endpoint's identity wherever the receiver trusts addresses. */
	if (ep->ipv4 && f.saddr != ep->ipv4)
		return drop_early(ep, DIR_EGRESS, &f, ifindex, skb->len, ep->identity,
				  DROP_INVALID_SOURCE_IP);
	/* SCTP to a service: policy is enforced on the translated backend. */
	if (f.proto == IPPROTO_SCTP) {
		ret = lb_xlate_fwd(skb, &f);
		if (ret < 0)
			return drop_early(ep, DIR_EGRESS, &f, ifindex, skb->len, ep->identity,
					  ret);
	}
	if (enforce(ep, ifindex, DIR_EGRESS, &f, skb->len, 0))
		return TC_ACT_SHOT;
	return forward(skb, ep, &f);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	const struct lxc_info *ep;
	struct flow f = {};
	int ret;

	ep = bpf_map_lookup_elem(&axo_lxc, &ifindex);
	if (!ep)
		return TC_ACT_OK;
	ret = parse_endpoint(skb, &f);
	if (ret == PARSE_PASS)
		return TC_ACT_OK;
	if (ret < 0)
		return drop_early(ep, DIR_INGRESS, &f, ifindex, skb->len, ep->identity, ret);
	/* From the overlay through the stack: the VNI's identity, not the address's. */
	if (enforce(ep, ifindex, DIR_INGRESS, &f, skb->len, identity_from_mark(skb->mark)))
		return TC_ACT_SHOT;
	ret = lb_xlate_rev(skb, &f);
	if (ret < 0)
		return drop_early(ep, DIR_INGRESS, &f, ifindex, skb->len, ep->identity, ret);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
