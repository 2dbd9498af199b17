// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * An event source for the observer: each run of gen_events sends
 * skb->cb[0] (at most 64) DROP events through lib/events.h, the datapath's
 * own path to axo_events (reserve failures counted in axo_metrics[0]).
 * Driven by BPF_PROG_TEST_RUN with a repeat count, it produces millions of
 * events per second: tests/privileged/test_privileged_observer.py checks
 * that every event is read or counted lost, bench/observer_events.py
 * measures the reader.
 *
 * Event i of a run carries cookie = cb[1] + i and sport = i, so a reader
 * can check what it got.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "lib/events.h"

#define GEN_MAX 64

SEC("tc")
int gen_events(struct __sk_buff *skb)
{
	struct event e;
	__u32 n = skb->cb[0];
	__u32 base = skb->cb[1];

	__builtin_memset(&e, 0, sizeof(e));
	e.dir = DIR_EGRESS;
	e.proto = 6;
	e.ep_id = 1;
	e.src_identity = 256;
	e.dst_identity = 2;
	e.saddr = bpf_htonl(0x0a2a0102); /* 10.42.1.2 */
	e.daddr = bpf_htonl(0xc6336410); /* 198.51.100.16 */
	e.dport = bpf_htons(80);
	e.tcp_flags = 0x02;
	for (__u32 i = 0; i < GEN_MAX; i++) {
		if (i >= n)
			break;
		e.sport = bpf_htons((__u16)i);
		e.cookie = base + i;
		event_send(&e, EVENT_DROP, VERDICT_DROPPED, 133);
	}
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
