/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv4 fragment tracking (as Cilium's cilium_ipv4_frag_datagrams): only the
 * first fragment of a datagram carries the L4 header, so its ports are
 * remembered under (saddr, daddr, id, proto) and later fragments are policed
 * and conntracked with them. A later fragment whose first fragment was never
 * seen is dropped: FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND (175).
 */
#ifndef AXONEME_LIB_FRAG_H
#define AXONEME_LIB_FRAG_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"
#include "drop.h"
#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ipv4_frag_key);
	__type(value, struct ipv4_frag_ports);
	__uint(max_entries, FRAG_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_frag SEC(".maps");

static __always_inline void frag_key(const struct flow *f, struct ipv4_frag_key *key)
{
	key->saddr = f->saddr;
	key->daddr = f->daddr;
	key->id = f->ip_id;
	key->proto = f->proto;
	key->pad = 0;
}

/* After parse_ipv4(): remember a first fragment's ports, or give a later
 * fragment the ports of its first. Returns 0 or a DROP_* code. */
static __always_inline int frag_track(struct flow *f)
{
	struct ipv4_frag_ports *ports;
	struct ipv4_frag_key key;

	if (f->frag == FRAG_NONE)
		return 0;
	frag_key(f, &key);
	if (f->frag == FRAG_FIRST) {
		struct ipv4_frag_ports v = { .sport = f->sport, .dport = f->dport };

		bpf_map_update_elem(&axo_frag, &key, &v, BPF_ANY);
		return 0;
	}
	ports = bpf_map_lookup_elem(&axo_frag, &key);
	if (!ports)
		return DROP_FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND;
	f->sport = ports->sport;
	f->dport = ports->dport;
	return 0;
}

#endif /* AXONEME_LIB_FRAG_H */
