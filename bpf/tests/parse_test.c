// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BPF unit test of lib/parse.h, run through BPF_PROG_TEST_RUN by
 * tests/privileged/test_privileged_datapath_bpfunit.py.
 *
 * test_parse parses the packet it is given and reports the result in
 * skb->cb[], which BPF_PROG_TEST_RUN copies back into ctx_out:
 *   cb[0] return code (0, PARSE_PASS or a negative DROP_*)
 *   cb[1] saddr, cb[2] daddr (NBO)
 *   cb[3] sport | dport << 16 (each NBO)
 *   cb[4] proto | tcp_flags << 8
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/parse.h"

SEC("tc")
int test_parse(struct __sk_buff *skb)
{
	struct flow f = {};
	int ret = parse_ipv4(skb, &f);

	skb->cb[0] = (__u32)ret;
	skb->cb[1] = f.saddr;
	skb->cb[2] = f.daddr;
	skb->cb[3] = (__u32)f.sport | (__u32)f.dport << 16;
	skb->cb[4] = (__u32)f.proto | (__u32)f.tcp_flags << 8;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
