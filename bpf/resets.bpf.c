/* Resets the TCP stack sends and receives (group "resets").
 *
 * Each has a plain form (the tracepoint's record, on every kernel) and a raw form (the bare
 * socket and packet, read here: no record is filled for us, about a tenth of a microsecond less
 * per reset), chosen per kernel by tcpwatch/live/probes.py. Both fill e the same way and hand
 * it to one function, which does the rest. */

/* The rest of a sent reset, once e holds what the caller knows (addresses, state, reason): the
 * packet that provoked it (NULL for an active reset), its namespace, owner, submission. */
static __always_inline void tw_reset_sent(int direct, void *ctx, const void *sk, const void *skb,
                                          struct tw_event *e, const struct tw_sk_facts *facts)
{
    struct tw_pkt trigger = {};
    struct tw_skb_view view = {};

    e->kind = TW_KIND_RESET_SENT;
    /* The packet that provoked the reset: its flags tell an unsolicited SYN/ACK from a stray
     * ACK; and a listener's reset, or one with no socket, goes back to where it came from. */
    if (tw_skb_view(direct, skb, 0, &view) && tw_read_tcp(direct, view.network, &trigger)) {
        e->trigger_flags = trigger.flags;
        if (!sk || e->state == TW_TCP_LISTEN) {
            e->family = trigger.family;
            __builtin_memcpy(e->saddr, trigger.daddr, 16);
            __builtin_memcpy(e->daddr, trigger.saddr, 16);
            e->sport = trigger.dport;
            e->dport = trigger.sport;
        }
    }
    e->netns = sk ? facts->netns : tw_skb_netns(direct, skb);
    if (!tw_keep(e))
        return;
    e->ts_ns = bpf_ktime_get_ns();
    e->skaddr = tw_addr(direct, sk);
    if (e->state)
        e->flags |= TW_F_HAS_STATE;
    e->cookie = facts->cookie;
    if (sk)
        tw_owner(direct, e, sk, e->skaddr);
    else
        e->flags |= TW_F_SOFTIRQ;  /* no socket: the reply to a stray packet, sent from softirq */
#if TW_WANT_NETDEV
    tw_stack_rst_sent(e);
#endif
    tw_submit(ctx, e);
}

/* The rest of a received reset: sk is the local socket, e holds the RST sender's end first. */
static __always_inline void tw_reset_received(int direct, void *ctx, const void *sk, struct tw_event *e,
                                              const struct tw_sk_facts *facts, __u64 cookie)
{
    e->kind = TW_KIND_RESET_RECEIVED;
    e->netns = facts->netns;
    if (!tw_keep(e))
        return;
    e->ts_ns = bpf_ktime_get_ns();
    e->skaddr = tw_addr(direct, sk);
    e->state = facts->state;
    if (e->state)
        e->flags |= TW_F_HAS_STATE;
    e->cookie = cookie;
    tw_owner(direct, e, sk, e->skaddr);
#if TW_HOLD_WIRE_IN
    tw_wire_in_fold(e);
#endif
    tw_submit(ctx, e);
}

#if TP_tcp_send_reset_PRESENT && !TW_RAW_tw_send_reset
int tw_send_reset(struct tp_tcp_send_reset *args)
{
    struct tw_event e = {};
    struct tw_sk_facts facts = {};
    const void *sk = (const void *)TPF(tcp_send_reset, skaddr, args);

    TW_ADDRS(tcp_send_reset, args, &e, 0);
    tw_sk_facts(sk, &facts);
    e.state = TPH(tcp_send_reset, state) ? TPF(tcp_send_reset, state, args) : facts.state;
    if (TPH(tcp_send_reset, reason)) {
        e.reason = TPF(tcp_send_reset, reason, args);
        e.flags |= TW_F_HAS_REASON;
    }
    tw_reset_sent(0, args, sk, (const void *)TPF(tcp_send_reset, skbaddr, args), &e, &facts);
    return 0;
}
#endif

#if TP_tcp_receive_reset_PRESENT && !TW_RAW_tw_receive_reset
int tw_receive_reset(struct tp_tcp_receive_reset *args)
{
    struct tw_event e = {};
    struct tw_sk_facts facts = {};
    const void *sk = (const void *)TPF(tcp_receive_reset, skaddr, args);

    /* The tracepoint describes the local socket; the RST's sender is the remote end. */
    TW_ADDRS(tcp_receive_reset, args, &e, 1);
    tw_sk_facts(sk, &facts);
    /* the tracepoint's cookie is generated on demand; the socket's own may still be 0 */
    tw_reset_received(0, args, sk, &e, &facts,
                      TPH(tcp_receive_reset, sock_cookie) ? TPF(tcp_receive_reset, sock_cookie, args) : facts.cookie);
    return 0;
}
#endif

/* Raw forms: (sk, skb, reason) and (sk), checked against this kernel's BTF at start; read
 * directly when loaded as BTF tracepoints. */
#if TW_RAW_tw_send_reset
int tw_send_reset_raw(tw_raw_args ctx)
{
    struct tw_event e = {};
    struct tw_sk_facts facts = {};
    const void *sk = (const void *)ctx[0];

    tw_sk_ends(TW_BTF_tw_send_reset, sk, &facts, &e, 0);
    e.state = facts.state;
    e.reason = (__u16)ctx[2];
    e.flags |= TW_F_HAS_REASON;
    tw_reset_sent(TW_BTF_tw_send_reset, ctx, sk, (const void *)ctx[1], &e, &facts);
    return 0;
}
#endif

#if TW_RAW_tw_receive_reset
int tw_receive_reset_raw(tw_raw_args ctx)
{
    struct tw_event e = {};
    struct tw_sk_facts facts = {};
    const void *sk = (const void *)ctx[0];

    tw_sk_ends(TW_BTF_tw_receive_reset, sk, &facts, &e, 1);
    tw_reset_received(TW_BTF_tw_receive_reset, ctx, sk, &e, &facts, facts.cookie);
    return 0;
}
#endif
