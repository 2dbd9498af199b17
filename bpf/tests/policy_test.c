// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BPF unit tests of the policy decision (lib/policy.h, policy_decide), one
 * program per case. Each returns 0 on success or the failing line number;
 * tests/privileged/test_privileged_datapath_bpfunit.py runs every program
 * of this object through BPF_PROG_TEST_RUN as its own pytest case.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "lib/policy.h"

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond))                                                                 \
			return __LINE__;                                                     \
	} while (0)

SEC("tc")
int test_no_match_not_enforced_forwards(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_decide(&m, false, false, &d);
	CHECK(d.verdict == VERDICT_FORWARDED);
	CHECK(d.drop == 0);
	CHECK(d.cookie == 0);
	return 0;
}

SEC("tc")
int test_no_match_enforced_denied(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_decide(&m, true, false, &d);
	CHECK(d.verdict == VERDICT_DROPPED);
	CHECK(d.drop == DROP_POLICY_DENIED);
	CHECK(d.cookie == 0);
	return 0;
}

SEC("tc")
int test_allow_wins_over_default(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_match_add(&m, 7, PORTS_ALLOW);
	policy_decide(&m, true, false, &d);
	CHECK(d.verdict == VERDICT_FORWARDED);
	CHECK(d.cookie == 7);
	return 0;
}

SEC("tc")
int test_deny_beats_allow(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_match_add(&m, 7, PORTS_ALLOW);
	policy_match_add(&m, 9, PORTS_DENY);
	policy_match_add(&m, 11, PORTS_ALLOW);
	policy_decide(&m, true, false, &d);
	CHECK(d.verdict == VERDICT_DROPPED);
	CHECK(d.drop == DROP_POLICY_DENY);
	CHECK(d.cookie == 9);
	return 0;
}

SEC("tc")
int test_deny_applies_when_not_enforced(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_match_add(&m, 3, PORTS_DENY);
	policy_decide(&m, false, false, &d);
	CHECK(d.verdict == VERDICT_DROPPED);
	CHECK(d.drop == DROP_POLICY_DENY);
	return 0;
}

SEC("tc")
int test_first_deciding_set_is_the_cookie(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_match_add(&m, 4, PORTS_DENY);
	policy_match_add(&m, 5, PORTS_DENY);
	policy_match_add(&m, 6, 0);
	policy_decide(&m, true, false, &d);
	CHECK(d.cookie == 4);
	return 0;
}

SEC("tc")
int test_audit_turns_drop_into_audit(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_decide(&m, true, true, &d);
	CHECK(d.verdict == VERDICT_AUDIT);
	CHECK(d.drop == DROP_POLICY_DENIED);
	policy_match_add(&m, 8, PORTS_DENY);
	policy_decide(&m, true, true, &d);
	CHECK(d.verdict == VERDICT_AUDIT);
	CHECK(d.drop == DROP_POLICY_DENY);
	return 0;
}

SEC("tc")
int test_audit_leaves_allow_alone(struct __sk_buff *skb)
{
	struct policy_match m = {};
	struct policy_decision d;

	policy_match_add(&m, 2, PORTS_ALLOW);
	policy_decide(&m, true, true, &d);
	CHECK(d.verdict == VERDICT_FORWARDED);
	CHECK(d.drop == 0);
	return 0;
}

char _license[] SEC("license") = "Dual BSD/GPL";
