/* --count mode: per-flow counters kept in the kernel instead of one record per event.
 * Placed after the core and before every event group (tcpwatch/live/probes.py: expand), it
 * redirects their tw_submit() calls here, so userspace only reads the table every interval.
 * A flow is (kind, netns, sender, receiver) as the event reports them. */

struct tw_flow_key {
    __u32 netns;
    __u8 family;
    __u8 kind;
    __u16 sport;
    __u16 dport;
    __u16 pad;
    __u8 saddr[16];
    __u8 daddr[16];
};
struct tw_flow_val {
    __u64 count;
    __u64 first_ns;
    __u64 last_ns;
};
BPF_HASH(tw_flows, struct tw_flow_key, struct tw_flow_val, TW_COUNT_FLOWS);

static __always_inline void tw_count_event(void *ctx, struct tw_event *e)
{
    struct tw_flow_key key = {};
    key.netns = e->netns;
    key.family = e->family;
    key.kind = e->kind;
    key.sport = e->sport;
    key.dport = e->dport;
    __builtin_memcpy(key.saddr, e->saddr, 16);
    __builtin_memcpy(key.daddr, e->daddr, 16);
    struct tw_flow_val *val = tw_flows.lookup(&key);
    if (!val) {
        struct tw_flow_val fresh = {};
        fresh.first_ns = e->ts_ns;
        tw_flows.insert(&key, &fresh);   /* another CPU may have won: then it is found below */
        val = tw_flows.lookup(&key);
    }
    if (!val) {                          /* the table is full: counted as lost, never silent */
        __u32 zero = 0;
        __u64 *lost = tw_lost.lookup(&zero);
        if (lost)
            (*lost)++;
        return;
    }
    __sync_fetch_and_add(&val->count, 1);
    val->last_ns = e->ts_ns;
}

#define tw_submit(ctx, e) tw_count_event(ctx, e)
