/* Connection lifecycle (group "lifecycle"): every TCP state change, with the socket's error
 * (sk_err: ETIMEDOUT after retransmits ran out, ECONNRESET/ECONNREFUSED after a RST). */

#if TP_inet_sock_set_state_PRESENT
int tw_state_change(struct tp_inet_sock_set_state *args)
{
    if (TPH(inet_sock_set_state, protocol) && TPF(inet_sock_set_state, protocol, args) != TW_IPPROTO_TCP)
        return 0;
    struct tw_event e = {};
    const void *sk = (const void *)TPF(inet_sock_set_state, skaddr, args);

    if (!tw_state_record_event(args, sk, &e))
        return 0;
    tw_owner(0, &e, sk, (__u64)sk);
    tw_submit(args, &e);
    return 0;
}
#endif
