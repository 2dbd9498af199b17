/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Connection tracking: an allowed new connection gets an entry, and every
 * later packet of it (either direction) passes on that entry without a
 * policy lookup, so established connections survive policy changes.
 *
 * Keys: see struct ct_key. A packet is first looked up as the original
 * direction (same tuple, same dir: CT_ESTABLISHED) and then as a reply
 * (reversed tuple, flipped dir: CT_REPLY). Entries are never deleted by the
 * datapath: they expire (checked on lookup; an expired entry is a miss and
 * is overwritten) and the LRU evicts them under pressure. The agent may
 * delete or flush entries through the pinned map.
 */
#ifndef AXONEME_LIB_CONNTRACK_H
#define AXONEME_LIB_CONNTRACK_H

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "drop.h"
#include "parse.h"

/* Lifetimes after the last packet: CT_LIFETIME_TCP and co. */
#include "lifetime.h"

/* A new one of these flags on a connection is worth a TRACE event. */
#define CT_TRACE_FLAGS (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(max_entries, CT_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_ct SEC(".maps");

static __always_inline __u64 ct_lifetime(const struct ct_value *v, __u8 proto)
{
	if (v->closing)
		return CT_CLOSE_TIMEOUT;
	if (proto != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP;
	return v->reply_seen ? CT_LIFETIME_TCP : CT_SYN_TIMEOUT;
}

static __always_inline bool ct_expired(const struct ct_value *v, __u8 proto, __u64 now)
{
	__u64 last = v->last_seen_ns;

	/* Another CPU may have stored a slightly later timestamp. */
	return now > last && now - last > ct_lifetime(v, proto);
}

/* The live entry of the packet's connection and its state, or NULL. */
static __always_inline struct ct_value *ct_lookup(const struct flow *f, __u8 dir, __u64 now,
						  __u8 *state)
{
	struct ct_key key = {
		.saddr = f->saddr,
		.daddr = f->daddr,
		.sport = f->sport,
		.dport = f->dport,
		.proto = f->proto,
		.dir = dir,
	};
	struct ct_value *v = bpf_map_lookup_elem(&axo_ct, &key);

	if (v && !ct_expired(v, f->proto, now)) {
		*state = CT_ESTABLISHED;
		return v;
	}
	key.saddr = f->daddr;
	key.daddr = f->saddr;
	key.sport = f->dport;
	key.dport = f->sport;
	key.dir = dir ^ 1;
	v = bpf_map_lookup_elem(&axo_ct, &key);
	if (v && !ct_expired(v, f->proto, now)) {
		*state = CT_REPLY;
		return v;
	}
	return NULL;
}

/* The live entry of the connection an ICMP error quotes, or NULL. The quoted
 * datagram went the connection's original way (keyed by the other endpoint
 * hook, so dir flips) or its reply way (the tuple reverses, dir stays). */
static __always_inline struct ct_value *ct_lookup_related(const struct flow *f, __u8 dir,
							  __u64 now)
{
	struct ct_key key = {
		.saddr = f->inner_saddr,
		.daddr = f->inner_daddr,
		.sport = f->inner_sport,
		.dport = f->inner_dport,
		.proto = f->inner_proto,
		.dir = dir ^ 1,
	};
	struct ct_value *v = bpf_map_lookup_elem(&axo_ct, &key);

	if (v && !ct_expired(v, f->inner_proto, now))
		return v;
	key.saddr = f->inner_daddr;
	key.daddr = f->inner_saddr;
	key.sport = f->inner_dport;
	key.dport = f->inner_sport;
	key.dir = dir;
	v = bpf_map_lookup_elem(&axo_ct, &key);
	if (v && !ct_expired(v, f->inner_proto, now))
		return v;
	return NULL;
}

/* Account one packet on its entry. Returns true when the packet should be
 * traced: the connection's first reply, or a SYN/FIN/RST not yet seen in the
 * packet's direction (monitor aggregation: one event per phase, not per packet). */
static __always_inline bool ct_update(struct ct_value *v, __u8 state, const struct flow *f,
				      __u64 now, __u32 len)
{
	__u8 *seen = state == CT_REPLY ? &v->reply_flags_seen : &v->tcp_flags_seen;
	__u8 fresh = f->tcp_flags & ~*seen;
	bool trace = fresh & CT_TRACE_FLAGS;

	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, len);
	v->last_seen_ns = now;
	/* Write only on change: a stored byte dirties the line for every CPU. */
	if (fresh)
		*seen |= f->tcp_flags;
	if ((f->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) && !v->closing)
		v->closing = 1;
	if (state == CT_REPLY && !v->reply_seen) {
		v->reply_seen = 1;
		trace = true;
	}
	return trace;
}

/* Create (or overwrite an expired) entry for a new connection's first packet. */
static __always_inline int ct_create(const struct flow *f, __u8 dir, __u32 src_identity,
				     __u32 ep_id, __u64 now, __u32 len)
{
	struct ct_key key = {
		.saddr = f->saddr,
		.daddr = f->daddr,
		.sport = f->sport,
		.dport = f->dport,
		.proto = f->proto,
		.dir = dir,
	};
	struct ct_value v = {
		.created_ns = now,
		.last_seen_ns = now,
		.packets = 1,
		.bytes = len,
		.src_identity = src_identity,
		.ep_id = ep_id,
		.tcp_flags_seen = f->tcp_flags,
		.closing = !!(f->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)),
	};

	if (bpf_map_update_elem(&axo_ct, &key, &v, BPF_ANY) < 0)
		return DROP_CT_MAP_INSERTION_FAILED;
	return 0;
}

#endif /* AXONEME_LIB_CONNTRACK_H */
