/* Resets the TCP stack sends and receives (group "resets"). */

#if TP_tcp_send_reset_PRESENT
int tw_send_reset(struct tp_tcp_send_reset *args)
{
    struct tw_event e = {};
    const void *sk = (const void *)TPF(tcp_send_reset, skaddr, args);
    const void *skb = (const void *)TPF(tcp_send_reset, skbaddr, args);

    e.kind = TW_KIND_RESET_SENT;
    TW_ADDRS(tcp_send_reset, args, &e, 0);
    e.netns = sk ? tw_sk_netns(sk) : tw_skb_netns(skb);
    if (!tw_keep(&e))
        return 0;
    e.ts_ns = bpf_ktime_get_ns();
    e.skaddr = (__u64)sk;
    if (TPH(tcp_send_reset, reason)) {
        e.reason = TPF(tcp_send_reset, reason, args);
        e.flags |= TW_F_HAS_REASON;
    }
    e.state = TPH(tcp_send_reset, state) ? TPF(tcp_send_reset, state, args) : tw_sk_state(sk);
    if (e.state)
        e.flags |= TW_F_HAS_STATE;
    e.cookie = tw_sk_cookie(sk);
    if (sk)
        tw_owner(&e, sk);
    else
        e.flags |= TW_F_SOFTIRQ;  /* no socket: the reply to a stray packet, sent from softirq */
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
    e.netns = tw_sk_netns(sk);
    if (!tw_keep(&e))
        return 0;
    e.ts_ns = bpf_ktime_get_ns();
    e.skaddr = (__u64)sk;
    e.state = tw_sk_state(sk);
    if (e.state)
        e.flags |= TW_F_HAS_STATE;
    e.cookie = TPH(tcp_receive_reset, sock_cookie) ? TPF(tcp_receive_reset, sock_cookie, args)
                                                    : tw_sk_cookie(sk);
    tw_owner(&e, sk);
    tw_submit(args, &e);
    return 0;
}
#endif
