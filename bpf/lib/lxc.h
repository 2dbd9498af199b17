/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The node's local endpoints and its datapath configuration.
 *
 *   axo_lxc     host-side veth ifindex -> endpoint (the programs' own endpoint)
 *   axo_lxc_ip  pod IPv4 -> host-side veth ifindex (the destination of local delivery)
 *   axo_config  one entry: routing mode and host routing (all zero: the stack routes)
 */
#ifndef AXONEME_LIB_LXC_H
#define AXONEME_LIB_LXC_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "axoneme.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32); /* ifindex of the host-side veth */
	__type(value, struct lxc_info);
	__uint(max_entries, LXC_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lxc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);   /* pod IPv4, NBO */
	__type(value, __u32); /* ifindex of its host-side veth, host order */
	__uint(max_entries, LXC_IP_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_lxc_ip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct datapath_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} axo_config SEC(".maps");

static __always_inline const struct datapath_config *datapath_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&axo_config, &zero);
}

static __always_inline __u32 config_flags(void)
{
	const struct datapath_config *cfg = datapath_config();

	return cfg ? cfg->flags : 0;
}

/* The local endpoint holding ip (NBO) and its host veth's ifindex, or NULL. */
static __always_inline const struct lxc_info *lxc_by_ip(__u32 ip, __u32 *ifindex)
{
	__u32 *found = bpf_map_lookup_elem(&axo_lxc_ip, &ip);

	if (!found)
		return NULL;
	*ifindex = *found;
	return bpf_map_lookup_elem(&axo_lxc, found);
}

/* Source identity carried in skb->mark from the overlay to to_container:
 * the low 16 bits in the top half, bits 16..23 in the low byte. */
static __always_inline __u32 mark_from_identity(__u32 identity)
{
	return ((identity & 0xFFFF) << 16) | MARK_MAGIC_IDENTITY | ((identity >> 16) & 0xFF);
}

static __always_inline __u32 identity_from_mark(__u32 mark)
{
	if ((mark & MARK_MAGIC_MASK) != MARK_MAGIC_IDENTITY)
		return 0;
	return ((mark >> 16) & 0xFFFF) | ((mark & 0xFF) << 16);
}

#endif /* AXONEME_LIB_LXC_H */
