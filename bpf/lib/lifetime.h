/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How long a flow's state outlives its last packet (Cilium's defaults), shared
 * by conntrack (lib/conntrack.h) and the north-south NAT (lib/nodeport.h).
 * src/axoneme/datapath/ctgc.py mirrors them for the agent's GC.
 */
#ifndef AXONEME_LIB_LIFETIME_H
#define AXONEME_LIB_LIFETIME_H

#ifndef NSEC_PER_SEC
#define NSEC_PER_SEC 1000000000ULL
#endif

#define CT_LIFETIME_TCP (21600ULL * NSEC_PER_SEC) /* established TCP */
#define CT_SYN_TIMEOUT (60ULL * NSEC_PER_SEC)	   /* TCP without a reply yet */
#define CT_LIFETIME_NONTCP (60ULL * NSEC_PER_SEC)
#define CT_CLOSE_TIMEOUT (10ULL * NSEC_PER_SEC)    /* after FIN or RST */

#endif /* AXONEME_LIB_LIFETIME_H */
