/* Resets the TCP stack sends and receives (group "resets"). */

#if TP_tcp_send_reset_PRESENT
int tw_send_reset(struct tp_tcp_send_reset *args)
{
    struct tw_event e = {};
    const void *sk = (const void *)TPF(tcp_send_reset, skaddr, args);
    const void *skb = (const void *)TPF(tcp_send_reset, skbaddr, args);

    struct tw_pkt trigger = {};

    e.kind = TW_KIND_RESET_SENT;
    TW_ADDRS(tcp_send_reset, args, &e, 0);
    struct tw_sk_facts facts = {};
    tw_sk_facts(sk, &facts);
    e.state = TPH(tcp_send_reset, state) ? TPF(tcp_send_reset, state, args) : facts.state;
    /* The packet that provoked the reset: its flags tell an unsolicited SYN/ACK from a stray
     * ACK; and a listener's reset carries the listener's addresses, not the peer's. */
    struct tw_skb_view view = {};
    if (tw_skb_view(skb, 0, &view) && tw_read_tcp(view.network, &trigger)) {
        e.trigger_flags = trigger.flags;
        if (e.state == 10 /* TCP_LISTEN */) {
            e.family = trigger.family;
            __builtin_memcpy(e.saddr, trigger.daddr, 16);
            __builtin_memcpy(e.daddr, trigger.saddr, 16);
            e.sport = trigger.dport;
            e.dport = trigger.sport;
        }
    }
    e.netns = sk ? facts.netns : tw_skb_netns(skb);
    if (!tw_keep(&e))
        return 0;
    e.ts_ns = bpf_ktime_get_ns();
    e.skaddr = (__u64)sk;
    if (TPH(tcp_send_reset, reason)) {
        e.reason = TPF(tcp_send_reset, reason, args);
        e.flags |= TW_F_HAS_REASON;
    }
    if (e.state)
        e.flags |= TW_F_HAS_STATE;
    e.cookie = facts.cookie;
    if (sk)
        tw_owner(&e, sk);
    else
        e.flags |= TW_F_SOFTIRQ;  /* no socket: the reply to a stray packet, sent from softirq */
#if TW_WANT_NETDEV
    tw_stack_rst_sent(&e);
#endif
    tw_submit(args, &e);
    return 0;
}
#endif

#if TP_tcp_receive_reset_PRESENT
int tw_receive_reset(struct tp_tcp_receive_reset *args)
{
    struct tw_event e = {};
    const void *sk = (const void *)TPF(tcp_receive_reset, skaddr, args);

    e.kind = TW_KIND_RESET_RECEIVED;
    /* The tracepoint describes the local socket; the RST's sender is the remote end. */
    TW_ADDRS(tcp_receive_reset, args, &e, 1);
    struct tw_sk_facts facts = {};
    tw_sk_facts(sk, &facts);
    e.netns = facts.netns;
    if (!tw_keep(&e))
        return 0;
    e.ts_ns = bpf_ktime_get_ns();
    e.skaddr = (__u64)sk;
    e.state = facts.state;
    if (e.state)
        e.flags |= TW_F_HAS_STATE;
    e.cookie = TPH(tcp_receive_reset, sock_cookie) ? TPF(tcp_receive_reset, sock_cookie, args) : facts.cookie;
    tw_owner(&e, sk);
    tw_submit(args, &e);
    return 0;
}
#endif
