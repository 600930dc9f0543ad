/* Retransmissions (group "retrans"): segments the stack sends again (data, FIN, SYN), and
 * SYN/ACKs resent for connections still waiting in a listener's queue.
 * Sequence number and TCP flags come from the skb's control block (struct tcp_skb_cb inside
 * sk_buff.cb, offsets from BTF): no header layout is assumed. */

#define TW_TCPHDR_SYN 0x02
#define TW_TCPHDR_ACK 0x10

#if TP_tcp_retransmit_skb_PRESENT
int tw_retransmit_skb(struct tp_tcp_retransmit_skb *args)
{
    struct tw_event e = {};
    const void *sk = (const void *)TPF(tcp_retransmit_skb, skaddr, args);
    const char *skb = (const char *)TPF(tcp_retransmit_skb, skbaddr, args);

    e.kind = TW_KIND_RETRANSMIT;
    TW_ADDRS(tcp_retransmit_skb, args, &e, 0);
    e.netns = tw_sk_netns(0, sk);
    if (!tw_keep(&e))
        return 0;
    e.ts_ns = bpf_ktime_get_ns();
    e.skaddr = (__u64)sk;
    e.state = TPH(tcp_retransmit_skb, state) ? TPF(tcp_retransmit_skb, state, args) : tw_sk_state(0, sk);
    if (e.state)
        e.flags |= TW_F_HAS_STATE;
    if (skb && OFF_SKB_CB >= 0) {
        if (OFF_TCB_SEQ >= 0)
            bpf_probe_read_kernel(&e.seq, sizeof(e.seq), skb + OFF_SKB_CB + OFF_TCB_SEQ);
        /* tcp_flags is a u8 or (6.x, with the AE bit) a u16: its low byte is the flags byte */
        if (OFF_TCB_FLAGS >= 0)
            bpf_probe_read_kernel(&e.tcpflags, sizeof(e.tcpflags), skb + OFF_SKB_CB + OFF_TCB_FLAGS);
    }
    e.err = (__u32)TPF(tcp_retransmit_skb, err, args);  /* 6.17+: the transmit's result */
    e.cookie = tw_sk_cookie(0, sk);
    tw_owner(0, &e, sk, (__u64)sk);
    tw_submit(args, &e);
    return 0;
}
#endif

#if TP_tcp_retransmit_synack_PRESENT
int tw_retransmit_synack(struct tp_tcp_retransmit_synack *args)
{
    struct tw_event e = {};
    const void *listener = (const void *)TPF(tcp_retransmit_synack, skaddr, args);
    const void *req = (const void *)TPF(tcp_retransmit_synack, req, args);

    e.kind = TW_KIND_RETRANSMIT;
    TW_ADDRS(tcp_retransmit_synack, args, &e, 0);
    e.netns = tw_sk_netns(0, listener);
    if (!tw_keep(&e))
        return 0;
    e.ts_ns = bpf_ktime_get_ns();
    /* The request socket is this connection's identity until it is accepted; it starts
     * with a struct sock_common, so the socket's state and cookie offsets apply. */
    e.skaddr = (__u64)(req ? req : listener);
    e.state = tw_sk_state(0, req);
    if (e.state)
        e.flags |= TW_F_HAS_STATE;
    e.tcpflags = TW_TCPHDR_SYN | TW_TCPHDR_ACK;
    if (req && OFF_REQ_ISN >= 0)
        bpf_probe_read_kernel(&e.seq, sizeof(e.seq), (const char *)req + OFF_REQ_ISN);
    e.cookie = tw_sk_cookie(0, req);
    tw_owner(0, &e, listener, (__u64)listener);  /* the listener's owner answers for its queue */
    tw_submit(args, &e);
    return 0;
}
#endif
