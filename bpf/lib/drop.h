/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Drop reasons: the one table shared with the observer
 * (src/axoneme/datapath/reasons.py; a unit test parses the lines below and
 * compares). Codes are Hubble's DropReason numbers, negated as in Cilium:
 * functions return 0 or a negative DROP_* code, and events and metrics carry
 * the positive number. Keep one define per line: name, negative code, and
 * the human text as a trailing comment.
 */
#ifndef AXONEME_LIB_DROP_H
#define AXONEME_LIB_DROP_H

#define DROP_INVALID_SOURCE_IP (-132)		/* Invalid source ip */
#define DROP_POLICY_DENIED (-133)		/* Policy denied */
#define DROP_INVALID_PACKET_DROPPED (-134)	/* Invalid packet */
#define DROP_UNSUPPORTED_L3_PROTOCOL (-139)	/* Unsupported L3 protocol */
#define DROP_ERROR_WRITING_TO_PACKET (-141)	/* Error writing to packet */
#define DROP_ERROR_RETRIEVING_TUNNEL_KEY (-147)	/* Error retrieving tunnel key */
#define DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM (-154)	/* Error while correcting L4 checksum */
#define DROP_CT_MAP_INSERTION_FAILED (-155)	/* CT: Map insertion failed */
#define DROP_SERVICE_BACKEND_NOT_FOUND (-158)	/* Service backend not found */
#define DROP_FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND (-175)	/* First logical datagram fragment not found */
#define DROP_POLICY_DENY (-181)		/* Policy denied by denylist */

#endif /* AXONEME_LIB_DROP_H */
