/* The one definition of what the kernel side hands to userspace.
 *
 * Included by the BPF program and parsed by tcpwatch/live/header.py, which builds the
 * Python decoder (a numpy dtype) from the struct below: change a field here and both sides
 * follow. Keep to the fixed-width types below (no __int128, no bitfields, no nested structs):
 * the parser understands exactly `TYPE name;` and `TYPE name[N];`.
 */
#ifndef TCPWATCH_H
#define TCPWATCH_H

#define TW_KIND_RESET_SENT 1
#define TW_KIND_RESET_RECEIVED 2
#define TW_KIND_RETRANSMIT 3
#define TW_KIND_STATE_CHANGE 4
#define TW_KIND_WIRE_OUT 5     /* a RST leaving a device, whoever made it (net:net_dev_queue) */
#define TW_KIND_WIRE_IN 6      /* a RST arriving on a device (net:netif_receive_skb) */

/* tw_event.flags */
#define TW_F_OWNER_TASK 1   /* pid/comm are the on-CPU task in process context */
#define TW_F_SOFTIRQ 2      /* the event fired in softirq: the on-CPU task is not the owner */
#define TW_F_HAS_REASON 4   /* reason is the kernel's reset reason */
#define TW_F_HAS_STATE 8    /* state is the socket's TCP state */
#define TW_F_OWNER_RECORDED 16 /* with TW_F_OWNER_TASK: pid/comm/uid are the socket's owner as recorded
                                * in process context (owner map), not the on-CPU task */
#define TW_F_DEVICE_COPY 32  /* reset-received: its device copy was folded in here (ifindex, tcpflags) */

#define TW_COMM_LEN 16

struct tw_event {
    __u64 ts_ns;        /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    __u64 skaddr;       /* kernel socket address: an identity, never dereferenced by userspace */
    __u64 cookie;       /* socket cookie, 0 when unknown */
    __u32 netns;        /* network namespace inode, 0 when unknown */
    __u32 pid;          /* owner tgid, valid with TW_F_OWNER_TASK */
    __u32 uid;
    __u32 seq;          /* retransmit: the segment's first sequence number */
    __u8 saddr[16];     /* sender of the packet: for resets, the endpoint that sent the RST */
    __u8 daddr[16];
    __u16 sport;        /* host byte order */
    __u16 dport;
    __u8 family;        /* 4 or 6 */
    __u8 kind;          /* TW_KIND_* */
    __u8 state;         /* TCP state number (TCP_ESTABLISHED = 1 ...), valid with TW_F_HAS_STATE */
    __u8 oldstate;      /* state-change: the state left */
    __u16 reason;       /* kernel reset reason (enum sk_rst_reason), valid with TW_F_HAS_REASON */
    __u8 tcpflags;      /* retransmit: TCP flags of the segment */
    __u8 flags;         /* TW_F_* */
    char comm[TW_COMM_LEN];
    __u32 err;          /* retransmit: the transmit's error; state-change: the socket's sk_err */
    __u32 ifindex;      /* wire events: the device */
    __u8 trigger_flags; /* reset-sent: TCP flags of the packet that provoked it, 0 when unknown */
    __u8 reserved8;
    __u16 reserved16;
};

#endif
