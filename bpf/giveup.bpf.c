/* Connections the kernel gave up on (group "giveup"): a move to CLOSE with a timeout-class
 * socket error. A retransmission timeout sends no RST at all, so this is the only trace a
 * reset-watcher gets of it. Every other state change leaves after one comparison. */

#define TW_ETIMEDOUT 110
#define TW_EHOSTUNREACH 113
#define TW_ENETUNREACH 101
#define TW_EHOSTDOWN 112

/* 1 when a TCP socket moving to newstate is one the kernel gave up on. */
static __always_inline int tw_gave_up(int direct, const void *sk, int newstate)
{
    if (newstate != TW_TCP_CLOSE)
        return 0;
    __u32 err = tw_sk_err(direct, sk);
    return err == TW_ETIMEDOUT || err == TW_EHOSTUNREACH || err == TW_ENETUNREACH || err == TW_EHOSTDOWN;
}

#if TP_inet_sock_set_state_PRESENT && !TW_RAW_tw_giveup
int tw_giveup(struct tp_inet_sock_set_state *args)
{
    if (TPF(inet_sock_set_state, newstate, args) != TW_TCP_CLOSE)
        return 0;
    if (TPH(inet_sock_set_state, protocol) && TPF(inet_sock_set_state, protocol, args) != TW_IPPROTO_TCP)
        return 0;
    const void *sk = (const void *)TPF(inet_sock_set_state, skaddr, args);
    if (!tw_gave_up(0, sk, TW_TCP_CLOSE))
        return 0;

    struct tw_event e = {};
    if (!tw_state_record_event(args, sk, &e))
        return 0;
    tw_owner(0, &e, sk, (__u64)sk);
    tw_submit(args, &e);
    return 0;
}
#endif

/* Raw form: no program of its own. The owner group's raw program on the same tracepoint calls
 * this for every TCP state change (tcpwatch/live/probes.py: raw_host), which saves a second
 * program run on every state change of the host. */
#if TW_RAW_tw_giveup
static __always_inline void tw_giveup_raw(int direct, void *ctx, const void *sk, __u64 key, int oldstate,
                                          int newstate)
{
    if (!tw_gave_up(direct, sk, newstate))
        return;
    struct tw_event e = {};
    struct tw_sk_facts facts = {};
    tw_sk_ends(direct, sk, &facts, &e, 0);
    e.netns = facts.netns;
    if (!tw_state_event(direct, sk, key, oldstate, newstate, &facts, &e))
        return;
    tw_owner(direct, &e, sk, key);
    tw_submit(ctx, &e);
}
#endif
