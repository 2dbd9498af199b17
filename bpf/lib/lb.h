/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Service load balancing: the maps shared by the socket LB (bpf_sock.c),
 * north-south translation (nodeport.h), the endpoint's per-packet SCTP
 * translation (lbxlate.h) and the agent (src/axoneme/datapath/linux/lbmaps.py
 * holds the Python twins), and the per-flow backend selection (lb_select) of
 * the two per-packet users.
 *
 *   axo_lb_svc       {vip, port, proto, scope} -> service: id, active backend count, flags
 *   axo_lb_slot      {svc id, slot 1..count} -> backend id (active backends only)
 *   axo_lb_backend   backend id -> {ip, port, proto, flags, svc id}
 *   axo_lb_maglev    svc id -> Maglev lookup table of backend ids (Maglev services)
 *   axo_lb_affinity  {client, svc id} -> backend id, last use (ClientIP): the
 *                    client is a netns cookie for the socket LB, an IPv4
 *                    address (LB_AFFINITY_CLIENT_IP) for north-south traffic
 *   axo_lb_revnat    {socket cookie, backend ip, port} -> {vip, port}: what
 *                    recvmsg4/getpeername4 show the application instead of the backend
 *
 * Backend ids are per service (a pod behind two services has two ids), so a
 * backend id found in the affinity map can be checked to still belong to the
 * service. Terminating backends stay in axo_lb_backend (existing connections
 * and `service list` see them) but have no slot and no Maglev entry, so no
 * new connection picks them.
 *
 * Layout rules as in include/axoneme.h: explicit padding, addresses and ports
 * in network byte order, everything else host order.
 */
#ifndef AXONEME_LIB_LB_H
#define AXONEME_LIB_LB_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define LB_SVC_MAP_SIZE 65536
#define LB_SLOT_MAP_SIZE 262144
#define LB_BACKEND_MAP_SIZE 262144
#define LB_MAGLEV_MAP_SIZE 4096
#define LB_AFFINITY_MAP_SIZE 65536
#define LB_REVNAT_MAP_SIZE 262144
/* The largest Maglev table a service may use; the agent picks the size per
 * node (a prime <= this, 16381 by default, as Cilium's default). */
#define LB_MAGLEV_MAX 16381

/* lb_svc.flags */
#define LB_F_MAGLEV (1U << 0)	/* select by Maglev table, else at random */
#define LB_F_AFFINITY (1U << 1) /* sessionAffinity: ClientIP */
/* The frontend's kind, for `service list` (the programs do not read them). */
#define LB_F_EXTERNAL_IP (1U << 2)
#define LB_F_LOADBALANCER (1U << 3)
#define LB_F_NODEPORT (1U << 4)
/* externalTrafficPolicy: Local on a LoadBalancer / external-IP / NodePort
 * frontend: this entry (scope LB_SCOPE_EXT) holds the node's own backends,
 * for clients outside the cluster; in-cluster clients (the socket LB) use the
 * twin entry of scope LB_SCOPE_INT, which holds every backend (Cilium's
 * SVC_FLAG_TWO_SCOPES). */
#define LB_F_TWO_SCOPES (1U << 5)

/* lb_svc_key.scope. North-south (tc, XDP) looks up only LB_SCOPE_EXT. */
#define LB_SCOPE_EXT 0
#define LB_SCOPE_INT 1

/* lb_backend.flags */
#define LB_BE_TERMINATING (1U << 0)
#define LB_BE_LOCAL (1U << 1) /* on this node: north-south needs no SNAT to reach it */

/* axo_lb_svc key. 8 bytes. */
struct lb_svc_key {
	__u32 vip;   /* NBO */
	__u16 dport; /* NBO */
	__u8 proto;  /* IPPROTO_TCP / UDP / SCTP */
	__u8 scope;  /* LB_SCOPE_*: INT only in the twin of an LB_F_TWO_SCOPES entry */
};

/* axo_lb_svc value. 16 bytes. */
struct lb_svc {
	__u32 svc_id;		/* host order, 1.. */
	__u16 count;		/* active backends: slots 1..count */
	__u16 flags;		/* LB_F_* */
	__u32 affinity_timeout; /* seconds (LB_F_AFFINITY) */
	__u32 maglev_size;	/* entries used in this service's Maglev table */
};

/* axo_lb_slot key. 8 bytes. */
struct lb_slot_key {
	__u32 svc_id;
	__u32 slot;
};

/* axo_lb_backend value. 12 bytes. */
struct lb_backend {
	__u32 ip;    /* NBO */
	__u16 port;  /* NBO */
	__u8 proto;
	__u8 flags;  /* LB_BE_* */
	__u32 svc_id;
};

/* axo_lb_affinity key and value. 16 bytes each. */
struct lb_affinity_key {
	__u64 client; /* the client's netns cookie (one pod, or the node), or
		       * LB_AFFINITY_CLIENT_IP | its IPv4 address (NBO) */
	__u32 svc_id;
	__u32 pad;
};

struct lb_affinity {
	__u64 last_ns; /* bpf_ktime_get_ns() of the last selection */
	__u32 backend_id;
	__u32 pad;
};

/* axo_lb_revnat key and value. 16 and 8 bytes. */
struct lb_revnat_key {
	__u64 cookie; /* socket cookie */
	__u32 ip;     /* backend, NBO */
	__u16 port;   /* backend, NBO */
	__u16 pad;
};

struct lb_revnat {
	__u32 vip;   /* NBO */
	__u16 vport; /* NBO */
	__u16 pad;
};

struct lb_maglev {
	__u32 backend_ids[LB_MAGLEV_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_svc_key);
	__type(value, struct lb_svc);
	__uint(max_entries, LB_SVC_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_slot_key);
	__type(value, __u32);
	__uint(max_entries, LB_SLOT_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(max_entries, LB_BACKEND_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_backend SEC(".maps");

/* Not preallocated: 64 KiB per entry is paid only by Maglev services. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct lb_maglev);
	__uint(max_entries, LB_MAGLEV_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_affinity_key);
	__type(value, struct lb_affinity);
	__uint(max_entries, LB_AFFINITY_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb_revnat_key);
	__type(value, struct lb_revnat);
	__uint(max_entries, LB_REVNAT_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lb_revnat SEC(".maps");

#define NSEC_PER_SEC 1000000000ULL
/* lb_affinity_key.client of a north-south client, by address: netns cookies
 * count up from 1 and never reach the top bit, so the two kinds never meet. */
#define LB_AFFINITY_CLIENT_IP (1ULL << 63)

/* A backend still usable for new connections of this service. */
static __always_inline const struct lb_backend *lb_usable(__u32 id, __u32 svc_id)
{
	const struct lb_backend *be;

	if (!id)
		return 0;
	be = bpf_map_lookup_elem(&axo_lb_backend, &id);
	if (!be || be->svc_id != svc_id || (be->flags & LB_BE_TERMINATING))
		return 0;
	return be;
}

/* sessionAffinity: ClientIP: the backend this client was last given within the
 * service's timeout, if still usable (*id set), else NULL. */
static __always_inline const struct lb_backend *lb_affinity_get(const struct lb_svc *svc,
								__u64 client, __u64 now, __u32 *id)
{
	struct lb_affinity_key key = {.client = client, .svc_id = svc->svc_id};
	const struct lb_affinity *aff = bpf_map_lookup_elem(&axo_lb_affinity, &key);

	if (!aff || now - aff->last_ns > (__u64)svc->affinity_timeout * NSEC_PER_SEC)
		return 0;
	*id = aff->backend_id;
	return lb_usable(*id, svc->svc_id);
}

/* Remember (or refresh: each new connection restarts the timeout) the choice. */
static __always_inline void lb_affinity_set(const struct lb_svc *svc, __u64 client, __u64 now,
					    __u32 id)
{
	struct lb_affinity_key key = {.client = client, .svc_id = svc->svc_id};
	struct lb_affinity value = {.last_ns = now, .backend_id = id};

	bpf_map_update_elem(&axo_lb_affinity, &key, &value, BPF_ANY);
}

/* A 32-bit mix (murmur3's finaliser over each word); the Python twin is
 * axoneme.loadbalancer.maglev.flow_hash, so tests can predict selections. */
static __always_inline __u32 lb_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 lb_hash(__u32 a, __u32 b, __u32 c)
{
	__u32 h = lb_mix(lb_mix(lb_mix(0x9747b28c, a), b), c);

	h ^= 12;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* A backend id for a new flow of svc (count > 0): Maglev over the flow's
 * {source, destination port, source port, destination}, or a random slot.
 * 0 if none (the agent is mid-update). Shared by north-south (nodeport.h)
 * and the endpoint's per-packet SCTP translation (lbxlate.h). */
static __always_inline __u32 lb_pick(const struct lb_svc *svc, __u32 saddr, __u32 daddr,
				     __u16 sport, __u16 dport)
{
	if (svc->flags & LB_F_MAGLEV) {
		const struct lb_maglev *table = bpf_map_lookup_elem(&axo_lb_maglev, &svc->svc_id);
		__u32 idx;

		if (!table || !svc->maglev_size)
			return 0;
		idx = lb_hash(saddr, ((__u32)dport << 16) | sport, daddr) % svc->maglev_size;
		/* Keep the bound check on the very register used as the index. */
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

/* The backend of a new flow of svc (count > 0) from client (an affinity key,
 * see axo_lb_affinity): under ClientIP the client's backend while it is
 * usable, else lb_pick's; the affinity is (re)recorded. NULL: no usable
 * backend. *id is set to the backend's id. */
static __always_inline const struct lb_backend *lb_select(const struct lb_svc *svc, __u64 client,
							  __u32 saddr, __u32 daddr, __u16 sport,
							  __u16 dport, __u32 *id)
{
	const struct lb_backend *be = 0;
	__u64 now = 0;

	if (svc->flags & LB_F_AFFINITY) {
		now = bpf_ktime_get_ns();
		be = lb_affinity_get(svc, client, now, id);
	}
	if (!be) {
		*id = lb_pick(svc, saddr, daddr, sport, dport);
		be = lb_usable(*id, svc->svc_id);
	}
	if (be && (svc->flags & LB_F_AFFINITY))
		lb_affinity_set(svc, client, now, *id);
	return be;
}

#endif /* AXONEME_LIB_LB_H */
