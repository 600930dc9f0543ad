/* RSTs on the wire (group "netdev"): every RST leaving or entering a device, whoever made it.
 * Resets netfilter sends (REJECT --reject-with tcp-reset) never reach tcp_send_reset, and RSTs
 * dropped before TCP (conntrack INVALID) never reach tcp_receive_reset: only here are they seen.
 * Userspace pairs these with the stack's events to label each reset's origin.
 * Runs on every packet, so it bails out as early as it can: not IP, not TCP, not RST. */

static __always_inline void tw_wire(int direct, void *ctx, const void *skb, __u8 kind, int from_data)
{
    struct tw_skb_view v = {};
    if (!tw_skb_view(direct, skb, from_data, &v))
        return;
    if (v.protocol != bpf_htons(0x0800) && v.protocol != bpf_htons(0x86DD))
        return;
    struct tw_pkt p = {};
    if (!tw_read_tcp(direct, v.network, &p) || !(p.flags & TW_TCP_RST))
        return;

    struct tw_event e = {};
    e.kind = kind;
    e.family = p.family;
    __builtin_memcpy(e.saddr, p.saddr, 16);
    __builtin_memcpy(e.daddr, p.daddr, 16);
    e.sport = p.sport;
    e.dport = p.dport;
    tw_dev_facts(direct, tw_ptr_at(direct, skb, OFF_SKB_DEV), &e.netns, &e.ifindex);
    if (kind == TW_KIND_WIRE_OUT && tw_stack_rst_seen(&e))
        return;  /* the stack's own reset, already reported (and kept by the filters) */
    if (!tw_keep(&e))
        return;
    e.ts_ns = bpf_ktime_get_ns();
    e.seq = p.seq;
    e.tcpflags = p.flags;
    e.flags |= TW_F_SOFTIRQ;  /* a packet has no owner here; the stack's event names one */
#if TW_HOLD_WIRE_IN
    if (kind == TW_KIND_WIRE_IN) {
        tw_wire_in_hold(ctx, &e);   /* its socket's event takes it, if one comes */
        return;
    }
#endif
    tw_submit(ctx, &e);
}

#if TP_net_dev_queue_PRESENT && !TW_RAW_tw_dev_queue
int tw_dev_queue(struct tp_net_dev_queue *args)
{
    tw_wire(0, args, (const void *)TPF(net_dev_queue, skbaddr, args), TW_KIND_WIRE_OUT, 0);
    return 0;
}
#endif

#if TP_netif_receive_skb_PRESENT && !TW_RAW_tw_receive_skb
int tw_receive_skb(struct tp_netif_receive_skb *args)
{
    tw_wire(0, args, (const void *)TPF(netif_receive_skb, skbaddr, args), TW_KIND_WIRE_IN, 1);
    return 0;
}
#endif

/* Raw variants: the skb is the tracepoint's only argument (checked against BTF at start); read
 * directly when loaded as a BTF tracepoint. */
#if TW_RAW_tw_dev_queue
int tw_dev_queue_raw(tw_raw_args ctx)
{
    tw_wire(TW_BTF_tw_dev_queue, ctx, (const void *)ctx[0], TW_KIND_WIRE_OUT, 0);
    return 0;
}
#endif

#if TW_RAW_tw_receive_skb
int tw_receive_skb_raw(tw_raw_args ctx)
{
    tw_wire(TW_BTF_tw_receive_skb, ctx, (const void *)ctx[0], TW_KIND_WIRE_IN, 1);
    return 0;
}
#endif
