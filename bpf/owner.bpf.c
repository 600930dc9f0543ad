/* The owner of each socket (group "owner", always compiled): recorded in process context,
 * where the on-CPU task is the one acting on the socket, so that events firing later in
 * softirq (received RSTs, timer retransmits) name the owner and not whoever was interrupted.
 *
 *  - any state change in process context (connect: CLOSE->SYN_SENT, listen: CLOSE->LISTEN,
 *    close/shutdown) records the current task for that socket;
 *  - a listener's owner is kept per (netns, port); a child socket reaching SYN_RECV or
 *    ESTABLISHED in softirq inherits it;
 *  - accept() returning a TCP socket records the accepting task (a pre-forked worker or a
 *    socket-activated service accepts from a listener another process made);
 *  - the entry goes when the socket is destroyed.
 * "Process context" is tw_task_acts_on(): the task owns the socket's lock (or, without that
 * offset, is not in a softirq). The table itself, and tw_owner() which reads it, are in
 * bpf/tcpwatch.bpf.c. */

struct tw_listen_key {
    __u32 netns;
    __u16 port;
    __u16 pad;
};
struct tw_listener {
    struct tw_owner_rec owner;
    __u64 sk;
};
BPF_TABLE("lru_hash", struct tw_listen_key, struct tw_listener, tw_listeners, 4096);


static __always_inline __u16 tw_owner_sport(const void *sk, const void *args, int raw)
{
#if TP_inet_sock_set_state_PRESENT
    if (!raw)
        return TPF(inet_sock_set_state, sport, (const struct tp_inet_sock_set_state *)args);
#endif
    /* inet_sport, as the tracepoint: skc_num is already 0 when a listener moves to CLOSE */
    return tw_inet_sport(sk);
}

/* A TCP socket changed state: who owns it now. sport is read only where a listener is
 * involved (the tracepoint's field, or the socket's own port for the raw variant). key: sk as
 * a number (tw_addr), the owner table's key. */
static __always_inline void tw_owner_changed(int direct, const void *sk, __u64 key, int oldstate, int newstate,
                                             const void *args, int raw)
{
    /* The listener key (a netns read: three memory loads) only where a listener is involved. */
    struct tw_listen_key lkey = {};
    int listener = newstate == TW_TCP_LISTEN || oldstate == TW_TCP_LISTEN;

    if (tw_task_acts_on(direct, sk, -1)) {
        struct tw_listener l = {};
        /* Already recorded for this process (connect, then the close of the same socket): the
         * record stands, and the comm copy and the write are saved. */
        if (!listener && tw_owner_get(key, &l.owner) && l.owner.pid == tw_current_pid(direct))
            return;
        tw_current_task(direct, &l.owner.pid, &l.owner.uid, l.owner.comm);
        tw_owner_put(key, &l.owner);
        if (!listener)
            return;
        lkey.netns = tw_sk_netns(direct, sk);
        lkey.port = tw_owner_sport(sk, args, raw);
        if (newstate == TW_TCP_LISTEN) {
            l.sk = key;
            tw_listeners.update(&lkey, &l);
        } else if (newstate == TW_TCP_CLOSE) {
            struct tw_listener *was = tw_listeners.lookup(&lkey);
            if (was && was->sk == key)
                tw_listeners.delete(&lkey);
        }
        return;
    }
    if (newstate == TW_TCP_SYN_RECV || newstate == TW_TCP_ESTABLISHED) {
        lkey.netns = tw_sk_netns(direct, sk);
        lkey.port = tw_owner_sport(sk, args, raw);
        struct tw_listener *l = tw_listeners.lookup(&lkey);
        struct tw_owner_rec known = {};
        if (l && !tw_owner_get(key, &known))
            tw_owner_put(key, &l->owner);
    }
}

#if TP_inet_sock_set_state_PRESENT && !TW_RAW_tw_owner_state
int tw_owner_state(struct tp_inet_sock_set_state *args)
{
    if (TPH(inet_sock_set_state, protocol) && TPF(inet_sock_set_state, protocol, args) != TW_IPPROTO_TCP)
        return 0;
    const void *sk = (const void *)TPF(inet_sock_set_state, skaddr, args);
    tw_owner_changed(0, sk, (__u64)sk, TPF(inet_sock_set_state, oldstate, args),
                     TPF(inet_sock_set_state, newstate, args), args, 0);
    return 0;
}
#endif

/* Raw variant: (sk, oldstate, newstate) as the kernel passes them; the protocol from the
 * socket (directly when loaded as a BTF tracepoint). It also runs the giveup group's check when
 * that rides on it (defined in bpf/giveup.bpf.c, appended later). */
#if TW_RAW_tw_giveup
static __always_inline void tw_giveup_raw(int direct, void *ctx, const void *sk, __u64 key, int oldstate,
                                          int newstate);
#endif

#if TW_RAW_tw_owner_state
int tw_owner_state_raw(tw_raw_args ctx)
{
    const void *sk = (const void *)ctx[0];
    if (!tw_sk_is_tcp(TW_BTF_tw_owner_state, sk))
        return 0;
    __u64 key = tw_addr(TW_BTF_tw_owner_state, sk);
    tw_owner_changed(TW_BTF_tw_owner_state, sk, key, (int)ctx[1], (int)ctx[2], 0, 1);
#if TW_RAW_tw_giveup
    tw_giveup_raw(TW_BTF_tw_owner_state, ctx, sk, key, (int)ctx[1], (int)ctx[2]);
#endif
    return 0;
}
#endif

#if TP_tcp_destroy_sock_PRESENT && !TW_RAW_tw_owner_destroy
int tw_owner_destroy(struct tp_tcp_destroy_sock *args)
{
    __u64 sk = (__u64)TPF(tcp_destroy_sock, skaddr, args);
    tw_owner_drop(sk);
    return 0;
}
#endif

#if TW_RAW_tw_owner_destroy
int tw_owner_destroy_raw(tw_raw_args ctx)
{
    tw_owner_drop(tw_addr(TW_BTF_tw_owner_destroy, (const void *)ctx[0]));
    return 0;
}
#endif

/* The socket behind file descriptor fd of the current task: task->files->fdt->fd[fd]->
 * private_data (struct socket)->sk, each offset from BTF. NULL when anything is missing. */
static __always_inline void *tw_fd_sock(long fd)
{
    if (fd < 0 || OFF_TASK_FILES < 0 || OFF_FILES_FDT < 0 || OFF_FDT_FD < 0 || OFF_FILE_PRIVATE < 0
        || OFF_SOCKET_SK < 0)
        return 0;
    void *task = (void *)bpf_get_current_task();
    void **fds = tw_ptr_at(0, tw_ptr_at(0, tw_ptr_at(0, task, OFF_TASK_FILES), OFF_FILES_FDT), OFF_FDT_FD);
    if (!fds)
        return 0;
    void *file = 0;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
    return tw_ptr_at(0, tw_ptr_at(0, file, OFF_FILE_PRIVATE), OFF_SOCKET_SK);
}

static __always_inline void tw_owner_accepted(long fd)
{
    void *sk = tw_fd_sock(fd);
    if (!tw_sk_is_tcp(0, sk))
        return;
    struct tw_owner_rec rec = {};
    tw_current_task(0, &rec.pid, &rec.uid, rec.comm);
    tw_owner_put((__u64)sk, &rec);
}

#if TP_sys_exit_accept4_PRESENT
int tw_owner_accept4(struct tp_sys_exit_accept4 *args)
{
    tw_owner_accepted(TPF(sys_exit_accept4, ret, args));
    return 0;
}
#endif

#if TP_sys_exit_accept_PRESENT
int tw_owner_accept(struct tp_sys_exit_accept *args)
{
    tw_owner_accepted(TPF(sys_exit_accept, ret, args));
    return 0;
}
#endif
