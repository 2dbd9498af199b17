/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every structure shared between the datapath and the agent (docs/datapath.md).
 *
 * The Python twins live in src/axoneme/datapath/linux/maps.py (map keys and
 * values) and src/axoneme/datapath/events.py (struct event); a privileged
 * test compares each one with this object's BTF, member by member.
 *
 * Layout rules followed throughout:
 *  - every padding byte is an explicit member, so the C layout and Python's
 *    "=" struct formats agree without relying on compiler alignment, and keys
 *    can be zero-initialised and compared bytewise by the kernel's hash maps;
 *  - addresses and ports are network byte order (they are copied from or
 *    compared with packet bytes); everything else is host order, except
 *    fields that are part of an LPM trie's matched bits, which must be
 *    big-endian because the trie matches most significant bits first;
 *  - LPM keys start with the __u32 prefixlen the kernel requires
 *    (struct bpf_lpm_trie_key).
 */
#ifndef AXONEME_H
#define AXONEME_H

#include <linux/types.h>

/* Directions, from the endpoint's point of view. */
#define DIR_INGRESS 0 /* into the pod: to_container, tc egress of the host veth */
#define DIR_EGRESS 1  /* out of the pod: from_container, tc ingress of the host veth */

/* lxc_info.flags */
#define LXC_F_INGRESS_ENFORCED (1U << 0)
#define LXC_F_EGRESS_ENFORCED (1U << 1)
#define LXC_F_INGRESS_AUDIT (1U << 2)
#define LXC_F_EGRESS_AUDIT (1U << 3)

/* Reserved identities (identity/reserved.py). */
#define IDENTITY_ANY 0 /* policy_key.identity: the entry applies to every peer */
#define IDENTITY_WORLD 2

/* ports_value.verdict */
#define PORTS_ALLOW 1
#define PORTS_DENY 2

/* event.type */
#define EVENT_DROP 1
#define EVENT_POLICY_VERDICT 2
#define EVENT_TRACE 3

/* event.verdict: Hubble's Verdict numbers */
#define VERDICT_FORWARDED 1
#define VERDICT_DROPPED 2
#define VERDICT_AUDIT 4

/* event.ct_state */
#define CT_NEW 0
#define CT_ESTABLISHED 1
#define CT_REPLY 2
#define CT_RELATED 3 /* an ICMP error about a tracked connection */

/* Map sizes (docs/datapath.md, "Maps"). */
#define LXC_MAP_SIZE 65536
#define IPCACHE_MAP_SIZE 524288
#define POLICY_MAP_SIZE 1048576
#define POLICY_CIDR_MAP_SIZE 262144
#define PORTS_MAP_SIZE 1048576
#define CT_MAP_SIZE 262144
#define EVENTS_RING_SIZE (4U << 20)
#define METRICS_MAP_SIZE 256
#define LXC_IP_MAP_SIZE 65536
#define FRAG_MAP_SIZE 8192

/* axo_frag key (LRU_HASH): one fragmented IPv4 datagram. 12 bytes. */
struct ipv4_frag_key {
	__u32 saddr, daddr; /* NBO */
	__u16 id;	    /* NBO: the IPv4 identification */
	__u8 proto;
	__u8 pad; /* must be 0 */
};

/* axo_frag value: the ports its first fragment carried. 4 bytes. */
struct ipv4_frag_ports {
	__u16 sport, dport; /* NBO */
};

/* datapath_config.flags (docs/datapath.md, "Routing") */
#define CFG_HOST_ROUTING_BPF (1U << 0) /* local delivery by redirect_peer, remote by redirect_neigh */
#define CFG_TUNNEL (1U << 1)	       /* remote pods through the VXLAN device, identity in the VNI */

/* axo_config value (ARRAY, one entry at key 0). 16 bytes. All zero = the
 * kernel stack routes everything (what a datapath without an agent config does). */
struct datapath_config {
	__u32 flags;	      /* host order: CFG_* */
	__u32 tunnel_ifindex; /* host order: the VXLAN (collect_md) device */
	__u32 pad[2];
};

/* skb->mark set by from_overlay: the source identity read from the VNI, for
 * to_container when the packet goes through the stack (Cilium's MARK_MAGIC_IDENTITY). */
#define MARK_MAGIC_IDENTITY 0x0F00
#define MARK_MAGIC_MASK 0x0F00

/* axo_lxc value, keyed by the host-side veth's ifindex. 32 bytes: four
 * __u32 then both MACs padded to a 4-byte multiple, no implicit padding. */
struct lxc_info {
	__u32 ep_id;	/* host order; policy maps carry it as __u16 */
	__u32 identity; /* host order: the endpoint's own security identity */
	__u32 ipv4;	/* NBO */
	__u32 flags;	/* host order: LXC_F_* */
	__u8 mac[6];	  /* the pod-side MAC: destination of local delivery */
	__u8 host_mac[6]; /* the host-side veth's MAC: source of local delivery */
	__u8 pad[4];
};

/* axo_ipcache key: an IPv4 prefix. 8 bytes; prefixlen 0..32 counts the
 * matched leading bits of ip. */
struct ipcache_key {
	__u32 prefixlen;
	__u32 ip; /* NBO */
};

/* axo_ipcache value. 12 bytes, three __u32. */
struct ipcache_value {
	__u32 identity;	 /* host order */
	__u32 tunnel_ip; /* NBO: the node hosting the address, 0 if local/none */
	__u32 flags;	 /* host order, reserved */
};

/* axo_policy key (HASH): which port set applies to (peer identity, endpoint,
 * direction). 8 bytes; ep_id is __u16 so the key stays 8 bytes (Cilium's
 * endpoint ids are 16-bit too). identity 0 = any peer. Value: __u32 set_id. */
struct policy_key {
	__u32 identity; /* host order */
	__u16 ep_id;	/* host order */
	__u8 dir;	/* DIR_* */
	__u8 pad;	/* must be 0: hash keys compare every byte */
};

/* axo_policy_cidr key (LPM_TRIE): peer prefixes from ipBlock rules. 12 bytes.
 * The matched bits are ep_id(16) dir(8) pad(8) ip(32), so ep_id is big-endian
 * and prefixlen = 32 + the IPv4 prefix length (always covers ep_id and dir).
 * Value: __u32 set_id (host order). */
struct policy_cidr_key {
	__u32 prefixlen;
	__u16 ep_id; /* BIG-endian: part of the LPM bits */
	__u8 dir;
	__u8 pad; /* must be 0 */
	__u32 ip; /* NBO */
};

/* axo_policy_ports key (LPM_TRIE): one prefix-aligned block of the 24-bit
 * protocol/port line of one port set. 12 bytes. Matched bits are
 * set_id(32) proto(8) pad(8) port(16), so set_id and port are big-endian.
 * prefixlen: 32 = every protocol; 33..39 = a block of protocol numbers;
 * 48 = one protocol, every port (the pad byte is always 0 so 40 would match
 * the same packets; 48 is the canonical form); 49..64 = a block of ports of
 * one protocol. Lookups use prefixlen 64. Blocks of one set are disjoint, so
 * the longest match is the only match. */
struct ports_key {
	__u32 prefixlen;
	__u32 set_id; /* BIG-endian: part of the LPM bits */
	__u8 proto;
	__u8 pad;     /* must be 0 */
	__u16 port;   /* NBO */
};

/* axo_policy_ports value. 8 bytes. */
struct ports_value {
	__u8 verdict; /* PORTS_ALLOW / PORTS_DENY */
	__u8 flags;   /* reserved */
	__u16 pad;
	__u32 cookie; /* opaque to the datapath (rule provenance for the agent) */
};

/* axo_ct key (LRU_HASH). 16 bytes. The tuple is the connection's ORIGINAL
 * direction, and dir is the direction of the endpoint that created the entry:
 * pod A (egress) and pod B (ingress) on one node each own an entry for the
 * same A->B connection. A reply is found by reversing the tuple and flipping
 * dir (reply leaves B by B's egress hook, its entry was made by B's ingress). */
struct ct_key {
	__u32 saddr, daddr; /* NBO */
	__u16 sport, dport; /* NBO */
	__u8 proto;
	__u8 dir;  /* DIR_* of the creating endpoint */
	__u16 pad; /* must be 0 */
};

/* axo_ct value. 48 bytes: the four counters first keep them 8-byte aligned.
 * tcp_flags_seen / reply_flags_seen are the TCP flags seen in the original /
 * reply direction; a packet carrying SYN, FIN or RST not yet seen in its
 * direction is traced (monitor aggregation). reply_seen marks the first reply
 * (traced too, and it makes a TCP entry "established" for its lifetime). */
struct ct_value {
	__u64 created_ns, last_seen_ns; /* bpf_ktime_get_ns() */
	__u64 packets, bytes;		/* both directions */
	__u32 src_identity;		/* identity of the original direction's source */
	__u32 ep_id;			/* the creating endpoint */
	__u8 tcp_flags_seen;
	__u8 closing;	/* FIN or RST seen: short lifetime */
	__u8 reply_flags_seen;
	__u8 reply_seen;
	__u8 pad[4];
};

/* axo_metrics value (PERCPU_ARRAY indexed by drop reason; index 0 counts
 * ring-buffer reserve failures). 16 bytes. */
struct metric {
	__u64 packets, bytes;
};

/* One axo_events record. 64 bytes, fixed size so consumers can view the
 * ring as an array. The tail padding is explicit (pad2) so no uninitialised
 * byte ever reaches user space. */
struct event {
	__u64 ts_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u8 type;    /* EVENT_* */
	__u8 verdict; /* VERDICT_* */
	__u8 dir;     /* DIR_* of the endpoint */
	__u8 proto;
	__u16 ep_id;
	__u16 reason; /* drop reason (lib/drop.h, positive), 0 if none */
	__u32 src_identity, dst_identity;
	__u32 saddr, daddr; /* NBO */
	__u16 sport, dport; /* NBO */
	__u8 tcp_flags;
	__u8 ct_state; /* CT_NEW / CT_ESTABLISHED / CT_REPLY */
	__u16 pad;
	__u32 ifindex, len;
	__u32 cookie; /* the set_id that decided, 0 if none */
	__u8 pad2[12];
};

#endif /* AXONEME_H */
