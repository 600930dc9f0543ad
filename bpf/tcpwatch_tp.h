/* Reading a tracepoint record whose layout is known only at start-up.
 *
 * Pure helpers (no maps, no bcc macros): the unit tests compile this file with gcc, with
 * bpf_probe_read_kernel standing in as memcpy, and run it on records of every layout.
 */
#ifndef TCPWATCH_TP_H
#define TCPWATCH_TP_H

/* The tracepoint record is the program's context: plain loads read it (the verifier checks
 * each against the record's bounds), several times cheaper than a helper call per field.
 * The packed struct makes the compiler load byte by byte where alignment is unknown, which
 * the verifier accepts for any offset. */
#define tw_read_record(dst, n, src) __builtin_memcpy((dst), (src), (n))

#define TPF(tp, f, a) TP_##tp##_##f(a)
#define TPP(tp, f, a) TP_##tp##_##f##_PTR(a)
#define TPH(tp, f) TP_##tp##_HAS_##f

/* Addresses from the pre-6.10 layout: ports in host order, family maybe absent. */
static __always_inline void tw_classic_addrs(struct tw_event *e, int has_family, __u16 family,
        const void *s4, const void *d4, const void *s6, const void *d6,
        __u16 sport, __u16 dport, int swap)
{
    __u8 *src = swap ? e->daddr : e->saddr, *dst = swap ? e->saddr : e->daddr;
    int v4;
    if (has_family) {
        v4 = family == 2;
    } else {
        /* No family field: a v4-mapped IPv6 address (::ffff:a.b.c.d) means IPv4. */
        __u32 w[3] = {};
        if (s6)
            tw_read_record(w, sizeof(w), s6);
        v4 = w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
    }
    e->family = v4 ? 4 : 6;
    if (v4 && s4) {
        tw_read_record(src, 4, s4);
        tw_read_record(dst, 4, d4);
    } else if (s6) {
        tw_read_record(src, 16, s6);
        tw_read_record(dst, 16, d6);
    }
    e->sport = swap ? dport : sport;
    e->dport = swap ? sport : dport;
}

/* Addresses from 6.10+'s 28-byte sockaddr fields: family, port (network order), address. */
static __always_inline void tw_sockaddr_addrs(struct tw_event *e, const void *sa, const void *da, int swap)
{
    const char *src = swap ? da : sa, *dst = swap ? sa : da;
    __u16 family = 0, sport = 0, dport = 0;
    tw_read_record(&family, sizeof(family), src);
    tw_read_record(&sport, sizeof(sport), src + 2);
    tw_read_record(&dport, sizeof(dport), dst + 2);
    e->sport = bpf_ntohs(sport);
    e->dport = bpf_ntohs(dport);
    if (family == 2) {
        e->family = 4;
        tw_read_record(e->saddr, 4, src + 4);
        tw_read_record(e->daddr, 4, dst + 4);
    } else {
        e->family = 6;
        tw_read_record(e->saddr, 16, src + 8);
        tw_read_record(e->daddr, 16, dst + 8);
    }
}

#define TW_ADDRS(tp, a, e, swap)                                                              \
    do {                                                                                      \
        if (TP_##tp##_SOCKADDR)                                                               \
            tw_sockaddr_addrs(e, TPP(tp, saddr, a), TPP(tp, daddr, a), swap);                 \
        else                                                                                  \
            tw_classic_addrs(e, TPH(tp, family), TPF(tp, family, a), TPP(tp, saddr, a),       \
                             TPP(tp, daddr, a), TPP(tp, saddr_v6, a), TPP(tp, daddr_v6, a),  \
                             TPF(tp, sport, a), TPF(tp, dport, a), swap);                     \
    } while (0)

#endif
