/* Connection lifecycle (group "lifecycle"): every TCP state change, with the socket's error
 * (sk_err: ETIMEDOUT after retransmits ran out, ECONNRESET/ECONNREFUSED after a RST). */

#if TP_inet_sock_set_state_PRESENT
int tw_state_change(struct tp_inet_sock_set_state *args)
{
    if (TPH(inet_sock_set_state, protocol) && TPF(inet_sock_set_state, protocol, args) != 6)
        return 0;
    struct tw_event e = {};
    const void *sk = (const void *)TPF(inet_sock_set_state, skaddr, args);

    e.kind = TW_KIND_STATE_CHANGE;
    TW_ADDRS(inet_sock_set_state, args, &e, 0);
    e.netns = tw_sk_netns(sk);
    if (!tw_keep(&e))
        return 0;
    e.ts_ns = bpf_ktime_get_ns();
    e.skaddr = (__u64)sk;
    e.oldstate = TPF(inet_sock_set_state, oldstate, args);
    e.state = TPF(inet_sock_set_state, newstate, args);
    e.flags |= TW_F_HAS_STATE;
    if (sk && OFF_SK_ERR >= 0)
        bpf_probe_read_kernel(&e.err, sizeof(e.err), (const char *)sk + OFF_SK_ERR);
    e.cookie = tw_sk_cookie(sk);
    tw_owner(&e, sk);
    tw_submit(args, &e);
    return 0;
}
#endif
