/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The ipcache: IPv4 prefix -> security identity of whoever holds the address. */
#ifndef AXONEME_LIB_IPCACHE_H
#define AXONEME_LIB_IPCACHE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, IPCACHE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_ipcache SEC(".maps");

/* The longest prefix's entry for ip (NBO), or NULL. */
static __always_inline const struct ipcache_value *ipcache_lookup(__u32 ip)
{
	struct ipcache_key key = { .prefixlen = 32, .ip = ip };

	return bpf_map_lookup_elem(&axo_ipcache, &key);
}

/* Identity of the longest prefix holding ip (NBO); world when none does. */
static __always_inline __u32 ipcache_identity(__u32 ip)
{
	const struct ipcache_value *v = ipcache_lookup(ip);

	return v ? v->identity : IDENTITY_WORLD;
}

#endif /* AXONEME_LIB_IPCACHE_H */
