// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The socket load balancer (docs/services.md): cgroup v2 sock_addr programs
 * that translate a service address to a backend when the application
 * connects or sends, so no packet of the connection is ever NATed.
 *
 *   sock4_connect      cgroup/connect4      TCP and connected UDP: pick a backend,
 *                                           rewrite the destination
 *   sock4_sendmsg      cgroup/sendmsg4      unconnected UDP: the same per datagram
 *   sock4_recvmsg      cgroup/recvmsg4      UDP replies: show the service as source
 *   sock4_getpeername  cgroup/getpeername4  the peer is the service, not the backend
 *
 * Attached to the node's cgroup (the cgroup v2 root on a real node, the
 * node's own subtree in the lab); the agent fills the maps in lib/lb.h.
 *
 * A service with no active backend refuses at once: connect() and sendmsg()
 * fail with ECONNREFUSED (bpf_set_retval) instead of sending to an address
 * nothing answers. Traffic to addresses that are not services is untouched.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <asm-generic/errno.h>
#include <bpf/bpf_helpers.h>

#include "lib/lb.h"

#define SYS_REJECT 0
#define SYS_PROCEED 1

static __always_inline __u32 select_maglev(const struct lb_svc *svc, const struct lb_svc_key *key,
					   struct bpf_sock_addr *ctx)
{
	const struct lb_maglev *table;
	struct bpf_sock *sk = ctx->sk;
	__u32 sport = 0, src = 0, idx;

	table = bpf_map_lookup_elem(&axo_lb_maglev, &svc->svc_id);
	if (!table || !svc->maglev_size)
		return 0;
	if (sk) {
		sport = sk->src_port; /* host order; 0 until the socket is bound */
		src = sk->src_ip4;
	}
	/* An unbound socket has no flow identity yet: any table entry will do. */
	if (!sport)
		src = bpf_get_prandom_u32();
	idx = lb_hash(key->vip, ((__u32)key->dport << 16) | sport, src) % svc->maglev_size;
	/* Keep the bound check on the very register used as the index. */
	asm volatile("" : "+r"(idx));
	if (idx >= LB_MAGLEV_MAX)
		return 0;
	return table->backend_ids[idx];
}

static __always_inline __u32 select_random(const struct lb_svc *svc)
{
	struct lb_slot_key slot = {
		.svc_id = svc->svc_id,
		.slot = bpf_get_prandom_u32() % svc->count + 1,
	};
	__u32 *id = bpf_map_lookup_elem(&axo_lb_slot, &slot);

	return id ? *id : 0;
}

/* 0: translated or not a service; negative errno: refuse the call. */
static __always_inline int xlate_fwd(struct bpf_sock_addr *ctx)
{
	struct lb_svc_key key = {
		.vip = ctx->user_ip4,
		.dport = (__u16)ctx->user_port,
		.proto = (__u8)ctx->protocol,
	};
	struct lb_revnat_key rkey = {};
	struct lb_revnat rnat = {};
	const struct lb_backend *be = 0;
	const struct lb_svc *svc;
	__u64 now = 0, client = 0;
	__u32 id = 0;

	svc = bpf_map_lookup_elem(&axo_lb_svc, &key);
	if (!svc)
		return 0;
	if (svc->flags & LB_F_TWO_SCOPES) {
		/* In-cluster clients reach every backend of an externalTrafficPolicy:
		 * Local frontend; its external entry holds only this node's. */
		key.scope = LB_SCOPE_INT;
		svc = bpf_map_lookup_elem(&axo_lb_svc, &key);
		if (!svc)
			return -EHOSTUNREACH; /* the agent is mid-update */
	}
	if (!svc->count)
		return -ECONNREFUSED;
	if (svc->flags & LB_F_AFFINITY) {
		now = bpf_ktime_get_ns();
		client = bpf_get_netns_cookie(ctx);
		be = lb_affinity_get(svc, client, now, &id);
	}
	if (!be) {
		id = (svc->flags & LB_F_MAGLEV) ? select_maglev(svc, &key, ctx) : select_random(svc);
		be = lb_usable(id, svc->svc_id);
	}
	if (!be)
		return -EHOSTUNREACH; /* the agent is mid-update: no half-written choice */
	if (svc->flags & LB_F_AFFINITY)
		lb_affinity_set(svc, client, now, id);
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.ip = be->ip;
	rkey.port = be->port;
	rnat.vip = key.vip;
	rnat.vport = key.dport;
	bpf_map_update_elem(&axo_lb_revnat, &rkey, &rnat, BPF_ANY);
	ctx->user_ip4 = be->ip;
	ctx->user_port = be->port;
	return 0;
}

static __always_inline int xlate_rev(struct bpf_sock_addr *ctx)
{
	struct lb_revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.ip = ctx->user_ip4,
		.port = (__u16)ctx->user_port,
	};
	const struct lb_revnat *rnat = bpf_map_lookup_elem(&axo_lb_revnat, &rkey);

	if (rnat) {
		ctx->user_ip4 = rnat->vip;
		ctx->user_port = rnat->vport;
	}
	return SYS_PROCEED;
}

static __always_inline int fwd_hook(struct bpf_sock_addr *ctx)
{
	int err;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return SYS_PROCEED;
	err = xlate_fwd(ctx);
	if (err) {
		bpf_set_retval(err);
		return SYS_REJECT;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sock4_connect(struct bpf_sock_addr *ctx)
{
	return fwd_hook(ctx);
}

SEC("cgroup/sendmsg4")
int sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return fwd_hook(ctx);
}

SEC("cgroup/recvmsg4")
int sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return xlate_rev(ctx);
}

SEC("cgroup/getpeername4")
int sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return xlate_rev(ctx);
}

char _license[] SEC("license") = "Dual BSD/GPL";
