/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Events to user space (axo_events ring buffer) and per-CPU counters
 * (axo_metrics). Which packets produce which events is decided by the
 * program (bpf_lxc.c); this header only builds and sends them.
 */
#ifndef AXONEME_LIB_EVENTS_H
#define AXONEME_LIB_EVENTS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "parse.h"

/* axo_metrics index 0: events lost because the ring was full. */
#define METRIC_RING_FULL 0

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RING_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct metric);
	__uint(max_entries, METRICS_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_metrics SEC(".maps");

static __always_inline void metric_add(__u32 index, __u32 len)
{
	struct metric *m = bpf_map_lookup_elem(&axo_metrics, &index);

	/* Per-CPU slot: plain increments, no atomics needed. */
	if (m) {
		m->packets++;
		m->bytes += len;
	}
}

/* The fields every event of one packet shares; type, verdict, reason and
 * ct_state are set per event by the caller. */
static __always_inline void event_init(struct event *e, const struct lxc_info *ep, __u8 dir,
				       const struct flow *f, __u32 ifindex, __u32 len)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->dir = dir;
	e->proto = f->proto;
	e->ep_id = (__u16)ep->ep_id;
	e->saddr = f->saddr;
	e->daddr = f->daddr;
	e->sport = f->sport;
	e->dport = f->dport;
	e->tcp_flags = f->tcp_flags;
	e->ifindex = ifindex;
	e->len = len;
}

/* Packet-based identities: egress packets come from the endpoint, ingress
 * packets go to it. */
static __always_inline void event_identities(struct event *e, __u8 dir, __u32 ep_identity,
					     __u32 peer_identity)
{
	e->src_identity = dir == DIR_EGRESS ? ep_identity : peer_identity;
	e->dst_identity = dir == DIR_EGRESS ? peer_identity : ep_identity;
}

static __always_inline void event_send(struct event *e, __u8 type, __u8 verdict, __u16 reason)
{
	e->ts_ns = bpf_ktime_get_ns();
	e->type = type;
	e->verdict = verdict;
	e->reason = reason;
	if (bpf_ringbuf_output(&axo_events, e, sizeof(*e), 0) < 0)
		metric_add(METRIC_RING_FULL, 0);
}

#endif /* AXONEME_LIB_EVENTS_H */
