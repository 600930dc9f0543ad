/* Connections the kernel gave up on (group "giveup"): a move to CLOSE with a timeout-class
 * socket error. A retransmission timeout sends no RST at all, so this is the only trace a
 * reset-watcher gets of it. Every other state change leaves after one comparison. */

#if TP_inet_sock_set_state_PRESENT
#define TW_ETIMEDOUT 110
#define TW_EHOSTUNREACH 113
#define TW_ENETUNREACH 101
#define TW_EHOSTDOWN 112

int tw_giveup(struct tp_inet_sock_set_state *args)
{
    if (TPF(inet_sock_set_state, newstate, args) != 7 /* TCP_CLOSE */)
        return 0;
    if (TPH(inet_sock_set_state, protocol) && TPF(inet_sock_set_state, protocol, args) != 6)
        return 0;
    const void *sk = (const void *)TPF(inet_sock_set_state, skaddr, args);
    __u32 err = 0;
    if (!sk || OFF_SK_ERR < 0)
        return 0;
    bpf_probe_read_kernel(&err, sizeof(err), (const char *)sk + OFF_SK_ERR);
    if (err != TW_ETIMEDOUT && err != TW_EHOSTUNREACH && err != TW_ENETUNREACH && err != TW_EHOSTDOWN)
        return 0;

    struct tw_event e = {};
    if (!tw_state_event(args, sk, &e))
        return 0;
    tw_owner(&e, sk);
    tw_submit(args, &e);
    return 0;
}
#endif
