/* tcpwatch's BPF program (compiled by bcc at start-up).
 *
 * Prepended by tcpwatch/live/program.py:
 *  - one packed struct per tracepoint, generated from the running kernel's format file, with
 *    accessor macros TP_<tp>_<field>(a) / TP_<tp>_<field>_PTR(a) that are 0 / NULL when this
 *    kernel's tracepoint lacks the field, and TP_<tp>_HAS_<field>;
 *  - OFF_* byte offsets of kernel struct members, from BTF (-1 when absent);
 *  - TW_* constants: transport, filters in use. User input only ever arrives as map entries.
 * Appended after it: the source file of each probe group wanted (tcpwatch/live/probes.py).
 */
#include "tcpwatch.h"
#include "tcpwatch_tp.h"

#define TW_MIN2(a, b) ((a) < (b) ? (a) : (b))
#define TW_MAX2(a, b) ((a) > (b) ? (a) : (b))

/* TCP states as the kernel numbers them (include/net/tcp_states.h), for the program's own
 * decisions; the names printed come from the format files. */
#define TW_TCP_ESTABLISHED 1
#define TW_TCP_SYN_RECV 3
#define TW_TCP_TIME_WAIT 6
#define TW_TCP_CLOSE 7
#define TW_TCP_LISTEN 10
#define TW_TCP_NEW_SYN_RECV 12
#define TW_IPPROTO_TCP 6

#if TW_USE_RINGBUF
BPF_RINGBUF_OUTPUT(events, TW_RINGBUF_PAGES);
#else
BPF_PERF_OUTPUT(events);
#endif

BPF_PERCPU_ARRAY(tw_lost, __u64, 1);      /* failed submissions: never silent */
#if !TW_CONTEXT_FROM_LOCK
BPF_PERCPU_ARRAY(tw_softirq, __u32, 1);   /* softirq nesting depth on this CPU */
#endif

#if TW_FILTER_NETNS
BPF_HASH(f_netns, __u32, __u8, 1024);
#endif
#if TW_FILTER_PORTS
BPF_HASH(f_ports, __u16, __u8, 1024);
#endif
#if TW_FILTER_HOSTS
struct tw_lpm_key {
    __u32 prefixlen;    /* 8 bits of family + the address prefix */
    __u8 data[17];      /* family (4 or 6), then the address */
};
BPF_LPM_TRIE(f_hosts, struct tw_lpm_key, __u8, 1024);
#endif

/* Reading kernel memory. A raw probe loaded as a BTF tracepoint (TW_BTF_<function>: tp_btf)
 * holds typed pointers (the socket, the skb and what hangs off them) that the verifier lets it
 * load from like memory: one instruction per field, where a bpf_probe_read_kernel() call costs
 * 25-35 ns on this kind of VM (measured), and a refused connect passes about twenty of them.
 * Every other program must use the helper. Each reader below takes `direct`, a constant at every
 * call site (all of this is inlined), so only one branch is compiled. The verifier checks each
 * direct load against BTF: it must lie within one member of the pointer's own struct, so direct
 * reads go field by field where the helper reads a window at once, and a member past the
 * pointer's type (inet_sock's from a struct sock *) and packet bytes (untyped) use the helper. */
typedef const void *tw_kptr;
#define TW_LOAD(direct, type, base, off) ({                                     \
        type tw_v_ = 0;                                                         \
        if (direct)                                                             \
            tw_v_ = *(const volatile type *)((const char *)(base) + (off));     \
        else                                                                    \
            bpf_probe_read_kernel(&tw_v_, sizeof(tw_v_), (const char *)(base) + (off)); \
        tw_v_; })

/* A member of base: 0 when base is NULL or this kernel lacks the member (off < 0). */
#define TW_FIELD(direct, type, base, off) ((base) && (off) >= 0 ? TW_LOAD(direct, type, base, off) : (type)0)

/* A raw probe's arguments, as the kernel passes them. Indexed as plain u64s, not through
 * struct bpf_raw_tracepoint_args: bcc rewrites loads through pointers it sees come from that
 * struct's members into helper calls, which would undo the direct reads. */
typedef unsigned long long *tw_raw_args;

BPF_PERCPU_ARRAY(tw_scratch, __u64, 1);

/* A kernel address as a number, for hashing (the owner table). A typed pointer the verifier
 * allows compared and stored, never multiplied: the number is taken after a trip through map
 * memory, which the verifier does not type. */
static __always_inline __u64 tw_addr(int direct, const void *p)
{
    if (!direct)
        return (__u64)p;
    __u32 zero = 0;
    volatile __u64 *slot = tw_scratch.lookup(&zero);
    if (!slot)
        return 0;
    *slot = (__u64)p;
    return *slot;
}

static __always_inline void *tw_ptr_at(int direct, const void *base, int off)
{
    return (void *)TW_FIELD(direct, tw_kptr, base, off);
}

static __always_inline __u32 tw_net_inum(int direct, const void *net)
{
    return TW_FIELD(direct, __u32, net, OFF_NET_INUM);
}

static __always_inline __u32 tw_sk_netns(int direct, const void *sk)
{
    return tw_net_inum(direct, tw_ptr_at(direct, sk, OFF_SK_NET));
}

/* A device's namespace and index: one read when they sit close together in struct net_device. */
#define TW_DEV_LO TW_MIN2(OFF_DEV_NET, OFF_DEV_IFINDEX)
#define TW_DEV_HI (TW_MAX2(OFF_DEV_NET, OFF_DEV_IFINDEX) + 8)
#define TW_DEV_ONE_READ (TW_DEV_LO >= 0 && TW_DEV_HI - TW_DEV_LO <= 64)

static __always_inline void tw_dev_facts(int direct, const void *dev, __u32 *netns, __u32 *ifindex)
{
    if (!dev)
        return;
    if (direct) {
        *netns = tw_net_inum(1, tw_ptr_at(1, dev, OFF_DEV_NET));
        *ifindex = TW_FIELD(1, __u32, dev, OFF_DEV_IFINDEX);
        return;
    }
#if TW_DEV_ONE_READ
    __u8 buf[64];      /* filled by the read before any use, as are the buffers below */
    void *net = 0;
    if (bpf_probe_read_kernel(buf, TW_DEV_HI - TW_DEV_LO, (const char *)dev + TW_DEV_LO))
        return;
    __builtin_memcpy(&net, &buf[OFF_DEV_NET - TW_DEV_LO], 8);
    __builtin_memcpy(ifindex, &buf[OFF_DEV_IFINDEX - TW_DEV_LO], 4);
    *netns = tw_net_inum(0, net);
#else
    *netns = tw_net_inum(0, tw_ptr_at(0, dev, OFF_DEV_NET));
    if (OFF_DEV_IFINDEX >= 0)
        bpf_probe_read_kernel(ifindex, sizeof(*ifindex), (const char *)dev + OFF_DEV_IFINDEX);
#endif
}

static __always_inline __u32 tw_skb_netns(int direct, const void *skb)
{
    __u32 netns = 0, ifindex = 0;
    tw_dev_facts(direct, tw_ptr_at(direct, skb, OFF_SKB_DEV), &netns, &ifindex);
    return netns;
}

/* Whether sk is a TCP socket: one byte of sk_protocol (the low byte of today's u16, or an
 * 8-bit field on older kernels). */
static __always_inline int tw_sk_is_tcp(int direct, const void *sk)
{
    return TW_FIELD(direct, __u8, sk, OFF_SK_PROTOCOL) == TW_IPPROTO_TCP;
}

static __always_inline __u8 tw_sk_state(int direct, const void *sk)
{
    return TW_FIELD(direct, __u8, sk, OFF_SK_STATE);
}

static __always_inline __u64 tw_sk_cookie(int direct, const void *sk)
{
    return TW_FIELD(direct, __u64, sk, OFF_SK_COOKIE);
}

static __always_inline __u32 tw_sk_err(int direct, const void *sk)
{
    return TW_FIELD(direct, __u32, sk, OFF_SK_ERR);
}

/* The local port as the tracepoints give it (inet_sport, network order in the socket). Past
 * struct sock, so always through the helper. */
static __always_inline __u16 tw_inet_sport(const void *sk)
{
    __u16 port = 0;
    if (sk && OFF_INET_SPORT >= 0)
        bpf_probe_read_kernel(&port, sizeof(port), (const char *)sk + OFF_INET_SPORT);
    return bpf_ntohs(port);
}

/* A socket's namespace, state and cookie, which the reset probes want together: they sit in
 * struct sock_common, close enough for one read (then one more for the namespace's inode). */
struct tw_sk_facts {
    __u32 netns;
    __u8 state;
    __u64 cookie;
};
#define TW_SK_LO TW_MIN2(TW_MIN2(OFF_SK_NET, OFF_SK_STATE), OFF_SK_COOKIE)
#define TW_SK_HI (TW_MAX2(TW_MAX2(OFF_SK_NET, OFF_SK_STATE), OFF_SK_COOKIE) + 8)
#define TW_SK_ONE_READ (TW_SK_LO >= 0 && TW_SK_HI - TW_SK_LO <= 128)

static __always_inline void tw_sk_facts(const void *sk, struct tw_sk_facts *f)
{
    if (!sk)
        return;
#if TW_SK_ONE_READ
    __u8 buf[128];
    void *net = 0;
    if (bpf_probe_read_kernel(buf, TW_SK_HI - TW_SK_LO, (const char *)sk + TW_SK_LO))
        return;
    __builtin_memcpy(&net, &buf[OFF_SK_NET - TW_SK_LO], 8);
    f->state = buf[OFF_SK_STATE - TW_SK_LO];
    __builtin_memcpy(&f->cookie, &buf[OFF_SK_COOKIE - TW_SK_LO], 8);
    f->netns = tw_net_inum(0, net);
#else
    f->netns = tw_sk_netns(0, sk);
    f->state = tw_sk_state(0, sk);
    f->cookie = tw_sk_cookie(0, sk);
#endif
}

#if OFF_SK_ENDS >= 0
/* Everything tw_sk_facts() reads, and the socket's two ends, from struct sock_common: what a raw
 * probe, handed the bare socket, reads instead of the tracepoint record's copy. Direct, field by
 * field; else in one helper read of the window tcpwatch/live/program.py's sk_ends_window()
 * computes. The ends go to e as the tracepoints give them: local first, or remote first with swap. */
static __always_inline void tw_sk_ends(int direct, const void *sk, struct tw_sk_facts *f, struct tw_event *e,
                                       int swap)
{
    const void *net = 0;
    __u16 family = 0, num = 0, dport = 0;
    __u8 *local = swap ? e->daddr : e->saddr, *remote = swap ? e->saddr : e->daddr;
    if (!sk)
        return;
    if (direct) {
        net = tw_ptr_at(1, sk, OFF_SK_NET);
        f->cookie = TW_LOAD(1, __u64, sk, OFF_SK_COOKIE);
        family = TW_LOAD(1, __u16, sk, OFF_SKC_FAMILY);
        num = TW_LOAD(1, __u16, sk, OFF_SK_NUM);
        dport = TW_LOAD(1, __u16, sk, OFF_SKC_DPORT);
        f->state = TW_LOAD(1, __u8, sk, OFF_SK_STATE);
        if (family == 2 /* AF_INET */) {
            __u32 l = TW_LOAD(1, __u32, sk, OFF_SKC_RCV_SADDR), r = TW_LOAD(1, __u32, sk, OFF_SKC_DADDR);
            __builtin_memcpy(local, &l, 4);
            __builtin_memcpy(remote, &r, 4);
        } else if (family == 10 /* AF_INET6 */) {
            __u64 l[2] = {TW_LOAD(1, __u64, sk, OFF_SKC_V6_RCV_SADDR), TW_LOAD(1, __u64, sk, OFF_SKC_V6_RCV_SADDR + 8)};
            __u64 r[2] = {TW_LOAD(1, __u64, sk, OFF_SKC_V6_DADDR), TW_LOAD(1, __u64, sk, OFF_SKC_V6_DADDR + 8)};
            __builtin_memcpy(local, l, 16);
            __builtin_memcpy(remote, r, 16);
        }
    } else {
        __u8 buf[OFF_SK_ENDS_LEN];
        if (bpf_probe_read_kernel(buf, sizeof(buf), (const char *)sk + OFF_SK_ENDS))
            return;
#define TW_SKB_AT(name) (&buf[OFF_##name - OFF_SK_ENDS])
        __builtin_memcpy(&net, TW_SKB_AT(SK_NET), 8);
        __builtin_memcpy(&f->cookie, TW_SKB_AT(SK_COOKIE), 8);
        __builtin_memcpy(&family, TW_SKB_AT(SKC_FAMILY), 2);
        __builtin_memcpy(&num, TW_SKB_AT(SK_NUM), 2);
        __builtin_memcpy(&dport, TW_SKB_AT(SKC_DPORT), 2);
        f->state = *TW_SKB_AT(SK_STATE);
        if (family == 2) {
            __builtin_memcpy(local, TW_SKB_AT(SKC_RCV_SADDR), 4);
            __builtin_memcpy(remote, TW_SKB_AT(SKC_DADDR), 4);
        } else if (family == 10) {
            __builtin_memcpy(local, TW_SKB_AT(SKC_V6_RCV_SADDR), 16);
            __builtin_memcpy(remote, TW_SKB_AT(SKC_V6_DADDR), 16);
        }
#undef TW_SKB_AT
    }
    f->netns = tw_net_inum(direct, net);
    e->family = family == 2 ? 4 : family == 10 ? 6 : 0;
    /* A full socket that gave its port back on the way to CLOSE still has it in inet_sport
     * (where the tracepoints read it); time-wait and request sockets have no inet_sock. */
    if (!num && f->state != TW_TCP_TIME_WAIT && f->state != TW_TCP_NEW_SYN_RECV)
        num = tw_inet_sport(sk);
    e->sport = swap ? bpf_ntohs(dport) : num;
    e->dport = swap ? num : bpf_ntohs(dport);
}
#endif

/* A TCP packet's headers, read from an skb whose network header is at nh. */
struct tw_pkt {
    __u8 family;     /* 4 or 6; 0 when not TCP over IP */
    __u8 flags;      /* TCP flags byte */
    __u16 sport;     /* host order */
    __u16 dport;
    __u32 seq;
    __u8 saddr[16];
    __u8 daddr[16];
};

#define TW_TCP_RST 0x04

/* The sk_buff fields a packet probe needs: protocol, and where the network header is (head +
 * network_header; on receive, before the stack has set it, data). On the kernels seen so far
 * they sit within 40 bytes of each other: one read then serves them all, instead of one helper
 * call each on every packet. */
#define TW_SKB_LO TW_MIN2(TW_MIN2(OFF_SKB_PROTOCOL, OFF_SKB_NETWORK_HEADER), TW_MIN2(OFF_SKB_HEAD, OFF_SKB_DATA))
#define TW_SKB_HI (TW_MAX2(TW_MAX2(OFF_SKB_PROTOCOL, OFF_SKB_NETWORK_HEADER), TW_MAX2(OFF_SKB_HEAD, OFF_SKB_DATA)) + 8)
#define TW_SKB_ONE_READ (TW_SKB_LO >= 0 && TW_SKB_HI - TW_SKB_LO <= 64)

struct tw_skb_view {
    __u16 protocol;     /* network order, as in the skb */
    const void *network;
};

static __always_inline int tw_skb_view(int direct, const void *skb, int from_data, struct tw_skb_view *v)
{
    __u64 head = 0;
    __u16 nh = 0xffff;
    if (!skb || TW_SKB_LO < 0)
        return 0;
    if (direct) {
        v->protocol = TW_LOAD(1, __u16, skb, OFF_SKB_PROTOCOL);
        if (from_data) {
            v->network = (const void *)TW_LOAD(1, __u64, skb, OFF_SKB_DATA);
            return v->network != 0;
        }
        head = TW_LOAD(1, __u64, skb, OFF_SKB_HEAD);
        nh = TW_LOAD(1, __u16, skb, OFF_SKB_NETWORK_HEADER);
    } else {
#if TW_SKB_ONE_READ
        __u8 buf[64];
        if (bpf_probe_read_kernel(buf, TW_SKB_HI - TW_SKB_LO, (const char *)skb + TW_SKB_LO))
            return 0;
        __builtin_memcpy(&v->protocol, &buf[OFF_SKB_PROTOCOL - TW_SKB_LO], 2);
        if (from_data) {
            __builtin_memcpy(&v->network, &buf[OFF_SKB_DATA - TW_SKB_LO], 8);
            return v->network != 0;
        }
        __builtin_memcpy(&head, &buf[OFF_SKB_HEAD - TW_SKB_LO], 8);
        __builtin_memcpy(&nh, &buf[OFF_SKB_NETWORK_HEADER - TW_SKB_LO], 2);
#else
        bpf_probe_read_kernel(&v->protocol, 2, (const char *)skb + OFF_SKB_PROTOCOL);
        if (from_data) {
            v->network = tw_ptr_at(0, skb, OFF_SKB_DATA);
            return v->network != 0;
        }
        head = (__u64)tw_ptr_at(0, skb, OFF_SKB_HEAD);
        bpf_probe_read_kernel(&nh, sizeof(nh), (const char *)skb + OFF_SKB_NETWORK_HEADER);
#endif
    }
    if (!head || nh == 0xffff)
        return 0;
    v->network = (const void *)(head + nh);
    return 1;
}

/* TCP headers read with plain loads: where the kernel types a pointer to bytes reached through
 * BTF (skb->head, skb->data) as read-only untrusted memory (6.17 and later), which a load may
 * read like any memory, a fault reading as 0 (TW_DIRECT_PACKET, probed at start). */
static __always_inline int tw_read_tcp_direct(const __u8 *nh, struct tw_pkt *p)
{
    const __u8 *tcp;
    if (!nh)
        return 0;
    __u8 vihl = *(const volatile __u8 *)nh;
    if ((vihl >> 4) == 4) {
        if (*(const volatile __u8 *)(nh + 9) != 6)
            return 0;
        p->family = 4;
        __u32 a = *(const volatile __u32 *)(nh + 12), b = *(const volatile __u32 *)(nh + 16);
        __builtin_memcpy(p->saddr, &a, 4);
        __builtin_memcpy(p->daddr, &b, 4);
        int ihl = (vihl & 0xf) * 4;
        if (ihl < 20)
            return 0;
        tcp = nh + ihl;
    } else if ((vihl >> 4) == 6) {
        if (*(const volatile __u8 *)(nh + 6) != 6)  /* extension headers are not followed */
            return 0;
        p->family = 6;
        __u64 a[4];
        a[0] = *(const volatile __u64 *)(nh + 8);
        a[1] = *(const volatile __u64 *)(nh + 16);
        a[2] = *(const volatile __u64 *)(nh + 24);
        a[3] = *(const volatile __u64 *)(nh + 32);
        __builtin_memcpy(p->saddr, &a[0], 16);
        __builtin_memcpy(p->daddr, &a[2], 16);
        tcp = nh + 40;
    } else {
        return 0;
    }
    __u32 ports = *(const volatile __u32 *)tcp;
    p->sport = bpf_ntohs((__u16)ports);
    p->dport = bpf_ntohs((__u16)(ports >> 16));
    p->seq = bpf_ntohl(*(const volatile __u32 *)(tcp + 4));
    p->flags = *(const volatile __u8 *)(tcp + 13);
    return 1;
}

/* TCP headers from a network header: one read covers an option-less IPv4 header or an IPv6
 * header and the TCP bytes after it; IPv4 options cost a second read. */
static __always_inline int tw_read_tcp(int direct, const void *nh, struct tw_pkt *p)
{
    if (direct && TW_DIRECT_PACKET)
        return tw_read_tcp_direct(nh, p);
    __u8 pkt[54];
    const __u8 *tcp;
    __u8 more[14];
    if (!nh || bpf_probe_read_kernel(pkt, sizeof(pkt), nh))
        return 0;
    if ((pkt[0] >> 4) == 4) {
        if (pkt[9] != 6)
            return 0;
        p->family = 4;
        __builtin_memcpy(p->saddr, &pkt[12], 4);
        __builtin_memcpy(p->daddr, &pkt[16], 4);
        int ihl = (pkt[0] & 0xf) * 4;
        if (ihl == 20) {
            tcp = &pkt[20];
        } else {
            if (ihl < 20 || bpf_probe_read_kernel(more, sizeof(more), (const char *)nh + ihl))
                return 0;
            tcp = more;
        }
    } else if ((pkt[0] >> 4) == 6) {
        if (pkt[6] != 6)  /* extension headers are not followed */
            return 0;
        p->family = 6;
        __builtin_memcpy(p->saddr, &pkt[8], 16);
        __builtin_memcpy(p->daddr, &pkt[24], 16);
        tcp = &pkt[40];
    } else {
        return 0;
    }
    p->sport = (tcp[0] << 8) | tcp[1];
    p->dport = (tcp[2] << 8) | tcp[3];
    p->seq = ((__u32)tcp[4] << 24) | ((__u32)tcp[5] << 16) | ((__u32)tcp[6] << 8) | tcp[7];
    p->flags = tcp[13];
    return 1;
}

#if TW_FILTER_HOSTS
static __always_inline int tw_host_match(__u8 family, const __u8 *addr)
{
    struct tw_lpm_key key = {};
    key.prefixlen = 8 + (family == 4 ? 32 : 128);
    key.data[0] = family;
    bpf_probe_read_kernel(&key.data[1], 16, addr);
    return f_hosts.lookup(&key) != 0;
}
#endif

/* Kernel-side filters: 1 keeps the event. A few namespaces (the usual --netns) are compiled
 * in as numbers (TW_NETNS_0..): a comparison each instead of a hash lookup per event. */
static __always_inline int tw_keep(struct tw_event *e)
{
#if TW_FILTER_NETNS && TW_NETNS_N > 0
    __u32 ns = e->netns;
    if (!(ns == TW_NETNS_0 || (TW_NETNS_N > 1 && ns == TW_NETNS_1) || (TW_NETNS_N > 2 && ns == TW_NETNS_2)
          || (TW_NETNS_N > 3 && ns == TW_NETNS_3)))
        return 0;
#elif TW_FILTER_NETNS
    if (!f_netns.lookup(&e->netns))
        return 0;
#endif
#if TW_FILTER_PORTS
    if (!f_ports.lookup(&e->sport) && !f_ports.lookup(&e->dport))
        return 0;
#endif
#if TW_FILTER_HOSTS
    if (!tw_host_match(e->family, e->saddr) && !tw_host_match(e->family, e->daddr))
        return 0;
#endif
    return 1;
}

/* Who owns each socket, recorded in process context by the owner group (bpf/owner.bpf.c):
 * at connect/listen/accept/close and when an accepted socket inherits its listener's owner,
 * cleared when the socket is destroyed.
 *
 * Kept in an array used as a 2-way set-associative table keyed by the socket's address, not a
 * hash map: every TCP socket on the host passes through here (a connect flood writes one record
 * per connection), and an array slot is plain memory to the program, where a hash map update
 * takes a lock and an allocation (measured: half a microsecond less per refused connect). Records carry
 * the socket as a tag and a check word over all their fields: two CPUs writing one slot at the
 * same moment leave a record that fails the check and reads as "owner unknown", never as
 * another socket's owner. A full set evicts one of its two records (null owner, never wrong). */
struct tw_owner_rec {
    __u32 pid;
    __u32 uid;
    char comm[TW_COMM_LEN];
};
struct tw_owner_slot {
    __u64 sk;       /* the socket; 0: free */
    __u64 check;
    struct tw_owner_rec owner;
};
#define TW_OWNER_SETS_LOG2 16
BPF_ARRAY(tw_owners, struct tw_owner_slot, 2 << TW_OWNER_SETS_LOG2);

static __always_inline __u32 tw_owner_set(__u64 sk)
{
    /* sockets are cache-line aligned slab objects: drop those bits, then Fibonacci hashing */
    return (__u32)(((sk >> 6) * 0x9E3779B97F4A7C15ULL) >> (64 - TW_OWNER_SETS_LOG2)) * 2;
}

static __always_inline __u64 tw_owner_check(__u64 sk, const struct tw_owner_rec *rec)
{
    __u64 c0 = 0, c1 = 0;
    __builtin_memcpy(&c0, rec->comm, 8);
    __builtin_memcpy(&c1, rec->comm + 8, 8);
    __u64 x = sk * 0xff51afd7ed558ccdULL;
    x ^= (((__u64)rec->pid << 32) | rec->uid) * 0xc4ceb9fe1a85ec53ULL;
    x ^= c0 * 0x9E3779B97F4A7C15ULL;
    x ^= c1 * 0xbf58476d1ce4e5b9ULL;
    return x ^ (x >> 31);
}

static __always_inline struct tw_owner_slot *tw_owner_way(__u32 index)
{
    return tw_owners.lookup(&index);
}

/* The owner recorded for sk into *rec: 1 when found (and intact). */
static __always_inline int tw_owner_get(__u64 sk, struct tw_owner_rec *rec)
{
    __u32 set = tw_owner_set(sk);
#pragma unroll
    for (int way = 0; way < 2; way++) {
        struct tw_owner_slot *slot = tw_owner_way(set + way);
        if (!slot || slot->sk != sk)
            continue;
        __builtin_memcpy(rec, &slot->owner, sizeof(*rec));
        __u64 check = slot->check;
        if (slot->sk == sk && check == tw_owner_check(sk, rec))
            return 1;
    }
    return 0;
}

static __always_inline void tw_owner_put(__u64 sk, const struct tw_owner_rec *rec)
{
    __u32 set = tw_owner_set(sk);
    struct tw_owner_slot *w0 = tw_owner_way(set), *w1 = tw_owner_way(set + 1);
    if (!w0 || !w1)
        return;
    struct tw_owner_slot *slot;
    if (w0->sk == sk)
        slot = w0;
    else if (w1->sk == sk)
        slot = w1;
    else if (!w0->sk)
        slot = w0;
    else if (!w1->sk)
        slot = w1;
    else
        slot = (bpf_get_prandom_u32() & 1) ? w1 : w0;
    slot->sk = 0;
    __builtin_memcpy(&slot->owner, rec, sizeof(*rec));
    slot->check = tw_owner_check(sk, rec);
    slot->sk = sk;
}

static __always_inline void tw_owner_drop(__u64 sk)
{
    __u32 set = tw_owner_set(sk);
#pragma unroll
    for (int way = 0; way < 2; way++) {
        struct tw_owner_slot *slot = tw_owner_way(set + way);
        if (slot && slot->sk == sk)
            slot->sk = 0;
    }
}

/* The task on this CPU: its tgid, uid and name. Direct loads from its task_struct in a BTF
 * tracepoint program (bpf_get_current_task_btf); else three helper calls, bpf_get_current_comm
 * the dearest (a string copy). */
#define TW_TASK_DIRECT (OFF_TASK_TGID >= 0 && OFF_TASK_COMM >= 0 && OFF_TASK_CRED >= 0 && OFF_CRED_UID >= 0)

static __always_inline void tw_current_task(int direct, __u32 *pid, __u32 *uid, char *comm)
{
    if (direct && TW_TASK_DIRECT) {
        const void *task = (const void *)bpf_get_current_task_btf();
        __u64 name[2] = {TW_LOAD(1, __u64, task, OFF_TASK_COMM), TW_LOAD(1, __u64, task, OFF_TASK_COMM + 8)};
        const void *cred = tw_ptr_at(1, task, OFF_TASK_CRED);
        *pid = TW_LOAD(1, __u32, task, OFF_TASK_TGID);
        *uid = TW_FIELD(1, __u32, cred, OFF_CRED_UID);
        __builtin_memcpy(comm, name, TW_COMM_LEN);
        return;
    }
    *pid = bpf_get_current_pid_tgid() >> 32;
    *uid = (__u32)bpf_get_current_uid_gid();
    bpf_get_current_comm(comm, TW_COMM_LEN);
}

static __always_inline __u32 tw_current_pid(int direct)
{
    if (direct && TW_TASK_DIRECT)
        return TW_LOAD(1, __u32, (const void *)bpf_get_current_task_btf(), OFF_TASK_TGID);
    return bpf_get_current_pid_tgid() >> 32;
}

#if !TW_CONTEXT_FROM_LOCK
/* Whether this CPU is running a softirq (depth kept by the core's softirq probes). */
static __always_inline int tw_in_softirq(void)
{
    __u32 zero = 0, *depth = tw_softirq.lookup(&zero);
    return depth && *depth;
}
#endif

/* Whether the on-CPU task is the one acting on socket sk (then it may be named as its owner).
 *
 * With TW_CONTEXT_FROM_LOCK (BTF gives sock.sk_lock.owned), from the socket itself: TCP works on
 * a socket in softirq only while no task owns its lock (a packet for an owned socket waits in
 * its backlog, a timer defers to the owner's release_sock), and every process-context path that
 * acts on one (connect, listen, close, shutdown, that backlog run) holds the lock. Owned means
 * "a task is acting on it, and it is this one". Exceptions, never the task's: a listener
 * (softirq serves it without the lock while an accept() may own it), and time-wait and request
 * sockets, which have no lock. state: the socket's, or -1 where it cannot be one of those.
 * This costs a load per event where the alternative, a softirq depth kept by probes on
 * irq:softirq_entry/exit, costs two program runs on every softirq of the host. Without the
 * offset, that depth says it: not in a softirq. */
static __always_inline int tw_task_acts_on(int direct, const void *sk, int state)
{
#if TW_CONTEXT_FROM_LOCK
    if (!sk || state == TW_TCP_LISTEN || state == TW_TCP_TIME_WAIT || state == TW_TCP_NEW_SYN_RECV)
        return 0;
    return TW_LOAD(direct, __s32, sk, OFF_SK_LOCK_OWNED) != 0;
#else
    return !tw_in_softirq();
#endif
}

/* The owner may be named only where the on-CPU task acts on the socket: elsewhere (softirq,
 * where the on-CPU task is whoever was interrupted) the recorded owner of the socket is used,
 * or nobody. sk: the socket the event concerns (may be NULL), key: it as a number (tw_addr),
 * state: e's socket state. */
static __always_inline void tw_owner(int direct, struct tw_event *e, const void *sk, __u64 key)
{
    if (!tw_task_acts_on(direct, sk, e->state)) {
        e->flags |= TW_F_SOFTIRQ;
        struct tw_owner_rec rec = {};
        if (!key || !tw_owner_get(key, &rec))
            return;
        e->flags |= TW_F_OWNER_TASK | TW_F_OWNER_RECORDED;
        e->pid = rec.pid;
        e->uid = rec.uid;
        __builtin_memcpy(e->comm, rec.comm, sizeof(e->comm));
        return;
    }
    e->flags |= TW_F_OWNER_TASK;
    tw_current_task(direct, &e->pid, &e->uid, e->comm);
}

static __always_inline void tw_submit(void *ctx, struct tw_event *e)
{
    int err;
#if TW_USE_RINGBUF
    err = events.ringbuf_output(e, sizeof(*e), 0);
#else
    err = events.perf_submit(ctx, e, sizeof(*e));
#endif
    if (err) {
        __u32 zero = 0;
        __u64 *lost = tw_lost.lookup(&zero);
        if (lost)
            (*lost)++;
    }
}

#if TW_WANT_NETDEV
/* The RST the stack reported last on this CPU, waiting for its packet on a device (group
 * "netdev"). A reset with no socket is traced just before it is sent, and the send runs on
 * the same CPU with bottom halves off, so one slot per CPU pairs them: the device's copy is
 * dropped here rather than paired in userspace, and a flood of refusals costs one event each
 * (a per-CPU slot, not a hash map: no lock, no hashing on the hot path). An active reset is
 * traced after its packet is sent; those pairs, and any the slot misses, userspace pairs.
 * The slot's age is kept in jiffies: a jiffy costs a memory load where a clock read costs
 * tens of nanoseconds on a VM. The copy usually follows within microseconds, but measured
 * under a flood one came 10 ms late (its sender interrupted): the window is 25 ticks, 25 to
 * 250 ms by CONFIG_HZ. Only the same flow in the same namespace on the same CPU matches. */
struct tw_flow {
    __u32 netns;
    __u16 sport;
    __u16 dport;
    __u8 saddr[16];
    __u8 daddr[16];
};
struct tw_pending_rst {
    struct tw_flow flow;
    __u64 jiffies;      /* when the stack reported it; 0: the slot is empty */
};
BPF_PERCPU_ARRAY(tw_stack_rst, struct tw_pending_rst, 1);
#define TW_PAIR_JIFFIES 25

static __always_inline void tw_flow_of(const struct tw_event *e, struct tw_flow *f)
{
    f->netns = e->netns;
    f->sport = e->sport;
    f->dport = e->dport;
    __builtin_memcpy(f->saddr, e->saddr, 16);
    __builtin_memcpy(f->daddr, e->daddr, 16);
}

static __always_inline void tw_stack_rst_sent(const struct tw_event *e)
{
    __u32 zero = 0;
    struct tw_pending_rst *slot = tw_stack_rst.lookup(&zero);
    if (slot) {
        tw_flow_of(e, &slot->flow);
        slot->jiffies = bpf_jiffies64();
    }
}

static __always_inline int tw_same_flow(const struct tw_flow *x, const struct tw_flow *y)
{
    const __u64 *a = (const __u64 *)x, *b = (const __u64 *)y;
#pragma unroll
    for (int i = 0; i < sizeof(*x) / 8; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* 1 when events a and b are of one flow (namespace, ends) */
static __always_inline int tw_flow_is(const struct tw_event *a, const struct tw_event *b)
{
    struct tw_flow fa = {}, fb = {};
    tw_flow_of(a, &fa);
    tw_flow_of(b, &fb);
    return tw_same_flow(&fa, &fb);
}

/* 1 when the device's RST e is the one the stack just reported on this CPU (slot cleared). */
static __always_inline int tw_stack_rst_seen(const struct tw_event *e)
{
    __u32 zero = 0;
    struct tw_pending_rst *slot = tw_stack_rst.lookup(&zero);
    if (!slot || !slot->jiffies || bpf_jiffies64() - slot->jiffies > TW_PAIR_JIFFIES)
        return 0;
    struct tw_flow mine = {};
    tw_flow_of(e, &mine);
    if (!tw_same_flow(&mine, &slot->flow))
        return 0;
    slot->jiffies = 0;
    return 1;
}


/* Not in --count mode, which counts every device record as the kernel sees it, nor before 5.12
 * (no compare-and-swap in BPF). */
#if !TW_WANT_COUNT && TW_HOLD_ALLOWED
#define TW_HOLD_WIRE_IN 1
/* The RST that arrived last on this CPU, held until its socket takes it. A received RST is seen
 * on the device, then, in the same softirq on the same CPU, by its socket (tcp_receive_reset):
 * the socket's event takes the device's facts and the device's record is never sent, so a
 * flood of refusals costs two records a connection, not three. One no socket took is sent when
 * the next RST arrives on this CPU, or taken from this slot by userspace once older than the
 * pairing window (tcpwatch/live/held.py). Each hold gets a new token: the socket's probe folds
 * a held RST only if its token is still there (a softirq may interrupt it when it runs from a
 * socket's backlog, and hold a newer one meanwhile). */
struct tw_held_rst {
    struct tw_event e;
    __u64 token;        /* 0: empty */
    __u64 last_token;
    __u64 jiffies;      /* when it was held */
};
BPF_PERCPU_ARRAY(tw_held_in, struct tw_held_rst, 1);

static __always_inline void tw_wire_in_hold(void *ctx, struct tw_event *e)
{
    __u32 zero = 0;
    struct tw_held_rst *slot = tw_held_in.lookup(&zero);
    if (!slot) {
        tw_submit(ctx, e);
        return;
    }
    if (slot->token)
        tw_submit(ctx, &slot->e);   /* the one before reached no socket on this CPU */
    __builtin_memcpy(&slot->e, e, sizeof(*e));
    slot->jiffies = bpf_jiffies64();
    slot->last_token++;
    slot->token = slot->last_token;
}

/* A received reset e takes the device's facts of its RST, held on this CPU just before. */
static __always_inline void tw_wire_in_fold(struct tw_event *e)
{
    __u32 zero = 0;
    struct tw_held_rst *slot = tw_held_in.lookup(&zero);
    if (!slot)
        return;
    __u64 token = slot->token;
    if (!token || bpf_jiffies64() - slot->jiffies > TW_PAIR_JIFFIES || !tw_flow_is(e, &slot->e))
        return;
    __u32 ifindex = slot->e.ifindex;
    __u8 tcpflags = slot->e.tcpflags;
    if (__sync_val_compare_and_swap(&slot->token, token, 0) != token)
        return;     /* replaced meanwhile: the older one was sent, userspace pairs them */
    e->ifindex = ifindex;
    e->tcpflags = tcpflags;
    e->flags |= TW_F_DEVICE_COPY;
}
#endif  /* !TW_WANT_COUNT && TW_HOLD_ALLOWED */

#endif

/* A state-change event for sk whose addresses and namespace e already holds (groups lifecycle
 * and giveup): 0 when the filters drop it. key: sk as a number (tw_addr). f: the socket's facts
 * when read already, else NULL. */
static __always_inline int tw_state_event(int direct, const void *sk, __u64 key, int oldstate, int newstate,
                                          const struct tw_sk_facts *f, struct tw_event *e)
{
    e->kind = TW_KIND_STATE_CHANGE;
    if (!tw_keep(e))
        return 0;
    e->ts_ns = bpf_ktime_get_ns();
    e->skaddr = key;
    e->oldstate = oldstate;
    e->state = newstate;
    e->flags |= TW_F_HAS_STATE;
    e->err = tw_sk_err(direct, sk);
    e->cookie = f ? f->cookie : tw_sk_cookie(direct, sk);
    return 1;
}

#if TP_inet_sock_set_state_PRESENT
/* The same from the tracepoint's record. */
static __always_inline int tw_state_record_event(struct tp_inet_sock_set_state *args, const void *sk,
                                                 struct tw_event *e)
{
    TW_ADDRS(inet_sock_set_state, args, e, 0);
    e->netns = tw_sk_netns(0, sk);
    return tw_state_event(0, sk, (__u64)sk, TPF(inet_sock_set_state, oldstate, args),
                          TPF(inet_sock_set_state, newstate, args), 0, e);
}
#endif

/* The softirq depth, where the socket's lock cannot tell the owner's context (the core probes
 * are attached only then; tcpwatch/live/probes.py: context_from_lock). */
#if !TW_CONTEXT_FROM_LOCK
static __always_inline void tw_softirq_in(void)
{
    __u32 zero = 0, *depth = tw_softirq.lookup(&zero);
    if (depth)
        (*depth)++;
}

static __always_inline void tw_softirq_out(void)
{
    __u32 zero = 0, *depth = tw_softirq.lookup(&zero);
    if (depth && *depth)
        (*depth)--;
}

/* Each probe is compiled in the one form it runs in: tracepoint, or raw (below). */
#if !TW_RAW_tw_softirq_entry
int tw_softirq_entry(void *ctx)
{
    tw_softirq_in();
    return 0;
}
#endif

#if !TW_RAW_tw_softirq_exit
int tw_softirq_exit(void *ctx)
{
    tw_softirq_out();
    return 0;
}
#endif

/* Raw variants (tcpwatch/live/probes.py): the tracepoints fire on every softirq. */
#if TW_RAW_tw_softirq_entry
int tw_softirq_entry_raw(tw_raw_args ctx)
{
    tw_softirq_in();
    return 0;
}
#endif

#if TW_RAW_tw_softirq_exit
int tw_softirq_exit_raw(tw_raw_args ctx)
{
    tw_softirq_out();
    return 0;
}
#endif
#endif  /* !TW_CONTEXT_FROM_LOCK */
