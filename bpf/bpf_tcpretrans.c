/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP retransmissions per flow, from the tcp_retransmit_skb tracepoint.
 *
 * Attached at tp_btf/tcp_retransmit_skb (kprobes and fentry are unavailable
 * here; BTF tracepoints work, docs/datapath.md). Every retransmitted skb of
 * an IPv4 socket whose local address is one of this node's endpoints
 * (axo_lxc_ip, the endpoint datapath's own map, shared through its pin) adds
 * one to its 4-tuple's entry in axo_tcp_retrans.
 *
 * Why filter on the local address: a tracepoint is kernel-wide, and in the
 * lab every node's agent shares one kernel, so each node's program sees every
 * namespace's retransmits. Pod addresses are unique in the cluster and
 * axo_lxc_ip holds exactly this node's, so each retransmit is counted once,
 * on the node of the sending pod.
 *
 * The kernel structs are declared here, reduced to the fields read, with
 * preserve_access_index: libbpf relocates the offsets against the running
 * kernel's BTF (CO-RE), so no generated vmlinux.h is needed.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#include "axoneme.h"
#include "lib/lxc.h"

#define AF_INET 2

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num; /* local port, host order */
	unsigned short skc_family;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct sk_buff {
	char cb[48]; /* TCP_SKB_CB(skb): struct tcp_skb_cb */
} __attribute__((preserve_access_index));

/* struct tcp_skb_cb: seq, end_seq, then tcp_gso_segs (the skb's segment
 * count, tcp_skb_pcount()) at byte 8 of the control buffer. */
#define TCP_SKB_CB_GSO_SEGS 8

/* axo_tcp_retrans key: the socket's 4-tuple as its local end sees it.
 * Addresses and ports network byte order, as everywhere in axoneme.h. */
struct tcp_retrans_key {
	__u32 saddr; /* the local endpoint */
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

/* axo_tcp_retrans value. Written without atomics by whichever CPU runs the
 * socket's retransmit (the socket lock serialises one flow's retransmits). */
struct tcp_retrans_value {
	__u64 segments;     /* retransmitted segments (an skb may carry several) */
	__u64 last_seen_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 first_seen_ns;
};

#define TCP_RETRANS_MAP_SIZE 16384

/* LRU: a node with more lossy flows than entries forgets the stalest ones. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct tcp_retrans_key);
	__type(value, struct tcp_retrans_value);
	__uint(max_entries, TCP_RETRANS_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_tcp_retrans SEC(".maps");

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tcp_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_retrans_key key = {};
	struct tcp_retrans_value *found, fresh = {};
	__u16 segs = 0;
	__u64 now;

	if (!sk || sk->__sk_common.skc_family != AF_INET)
		return 0;
	key.saddr = sk->__sk_common.skc_rcv_saddr;
	if (!bpf_map_lookup_elem(&axo_lxc_ip, &key.saddr))
		return 0; /* not one of this node's endpoints */
	key.daddr = sk->__sk_common.skc_daddr;
	key.sport = bpf_htons(sk->__sk_common.skc_num);
	key.dport = sk->__sk_common.skc_dport;
	/* The kernel adds tcp_skb_pcount(skb) to the socket's total_retrans. */
	if (skb)
		bpf_probe_read_kernel(&segs, sizeof(segs), skb->cb + TCP_SKB_CB_GSO_SEGS);
	if (!segs)
		segs = 1;
	now = bpf_ktime_get_ns();
	found = bpf_map_lookup_elem(&axo_tcp_retrans, &key);
	if (found) {
		found->segments += segs;
		found->last_seen_ns = now;
		return 0;
	}
	fresh.segments = segs;
	fresh.last_seen_ns = now;
	fresh.first_seen_ns = now;
	bpf_map_update_elem(&axo_tcp_retrans, &key, &fresh, BPF_ANY);
	return 0;
}

char _license[] SEC("license") = "Dual BSD/GPL";
