/*
 * _pcapcore: the per-packet hot path of `tcpwatch pcap`.
 *
 * Python feeds the capture in chunks (already gunzipped); this module walks pcap/pcapng
 * records, decodes link layer / VLAN / IPv4 / IPv6 / TCP headers, keeps a flow table and runs
 * two independent analyses per flow:
 *   - Zeek's TCP endpoint state machine, history letters and conn_state inputs
 *     (rules learned from Zeek's TCPSessionAdapter / TCP_Endpoint / conn main.zeek), and
 *   - Wireshark's tcp.analysis sequence analysis (retransmission, fast, spurious,
 *     out-of-order, keep-alive, zero-window probe), with Wireshark's own conversation splits.
 * Results leave as packed arrays of fixed records (events, connections) that numpy wraps
 * without per-packet Python objects. Layouts must match tcpwatch/pcap/records.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ output records */

#pragma pack(push, 1)
typedef struct {
    int64_t ts_ns;
    uint64_t pkt_no;
    uint64_t conn_id;
    uint8_t saddr[16];
    uint8_t daddr[16];
    uint32_t seq;
    uint32_t ack;
    uint32_t payload;
    uint16_t sport;
    uint16_t dport;
    uint16_t ipid;
    uint16_t expected_ipid;
    uint8_t family;
    uint8_t kind;      /* EV_* */
    uint8_t subtype;   /* RST_* or RX_* */
    uint8_t role;      /* 0 originator, 1 responder */
    uint8_t flags;
    uint8_t ttl;
    uint8_t expected_ttl;
    uint8_t basis;     /* RST_* the reset would be without the suspicion */
    uint8_t why;       /* WHY_* bits for suspect resets */
    uint8_t pad[3];
} ev_t;

typedef struct {
    int64_t ts_start_ns;
    int64_t ts_end_ns;
    uint64_t conn_id;
    uint64_t first_pkt;
    uint8_t orig_addr[16];
    uint8_t resp_addr[16];
    uint64_t orig_pkts, resp_pkts, orig_ip_bytes, resp_ip_bytes, orig_bytes, resp_bytes;
    uint32_t rst_orig, rst_resp, rexmit_orig, rexmit_resp, ooo_orig, ooo_resp;
    uint16_t orig_port, resp_port;
    uint8_t family, orig_state, resp_state, hist_len;
    char history[32];
} conn_out_t;

typedef struct {
    uint64_t pkt_no;
    uint64_t offset;
    uint64_t length;
    uint8_t reason; /* DMG_* */
    uint8_t pad[7];
} dmg_t;
#pragma pack(pop)

enum { EV_RST = 1, EV_RETRANSMIT = 2, EV_OOO = 3 };
enum { RST_REFUSED = 1, RST_ABORT, RST_AFTER_FIN, RST_SYNACK_REPLY, RST_SUSPECT, RST_UNMATCHED };
enum { RX_RETRANSMISSION = 1, RX_FAST, RX_SPURIOUS, RX_OUT_OF_ORDER };
enum { WHY_WINDOW = 1, WHY_TTL = 2, WHY_IPID = 4 };
enum {
    DMG_TRUNCATED_RECORD = 1, DMG_TRUNCATED_HEADER, DMG_OVERSIZED, DMG_GARBAGE,
    DMG_BAD_BLOCK, DMG_UNKNOWN_INTERFACE, DMG_GARBAGE_TO_EOF
};

/* ------------------------------------------------------------------ growable buffers */

typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static void *buf_push(buf_t *b, size_t size)
{
    if (b->n + size > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->n + size)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return NULL;
        b->p = np;
        b->cap = cap;
    }
    void *at = b->p + b->n;
    b->n += size;
    memset(at, 0, size);
    return at;
}

/* ------------------------------------------------------------------ byte helpers */

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline int32_t seq_delta(uint32_t a, uint32_t b) { return (int32_t)(a - b); }

/* ------------------------------------------------------------------ TCP flags */

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

typedef struct {
    int64_t ts;
    uint64_t pkt_no;
    const uint8_t *src, *dst;
    uint16_t sport, dport;
    uint8_t family, flags, ttl;
    uint16_t ipid;
    uint32_t seq, ack, win, paylen, ip_len;
    int wscale; /* -1: no option (only parsed on SYNs) */
} pkt_t;

/* ------------------------------------------------------------------ Zeek model */

enum { Z_INACTIVE = 0, Z_SYN_SENT, Z_SYN_ACK_SENT, Z_PARTIAL, Z_ESTABLISHED, Z_CLOSED, Z_RESET };

#define HIST_SYN 0x1
#define HIST_FIN 0x2
#define HIST_RST 0x4
#define HIST_FIN_RST 0x8
#define HIST_DATA 0x10
#define HIST_ACK 0x20
#define HIST_MULTI 0x40

#define NS 1000000000LL
#define TCP_ATTEMPT_DELAY (5 * NS)
#define TCP_CLOSE_DELAY (5 * NS)
#define TCP_PARTIAL_CLOSE_DELAY (3 * NS)
#define TCP_INACTIVITY (300 * NS)
#define HANDSHAKE_INACTIVITY (60 * NS)
#define TOO_LARGE_SEQ_DELTA 1048576

typedef struct {
    uint8_t state, prev_state, did_close;
    int8_t window_scale;
    uint32_t start_seq, last_seq, ack_seq, seq_wraps, ack_wraps;
    uint32_t window, window_seq, window_ack_seq;
    int64_t hist_last_syn, hist_last_fin, hist_last_rst;
    uint32_t fin_cnt, rst_cnt;
    uint32_t rxmt_cnt, rxmt_thresh, win0_cnt, win0_thresh;
    uint64_t pkts, ip_bytes;
    /* for reset attribution */
    uint8_t sent_syn, sent_synack, sent_fin, sent_data, sent_ack, have_ttl, have_ipid;
    uint8_t ttl;
    uint16_t ipid;
    uint32_t last_ack_sent, last_win_sent;
    uint32_t n_rst, n_rexmit, n_ooo;
} zep_t;

typedef struct {
    zep_t e[2];          /* indexed by canonical side of the flow, not by role */
    uint8_t orig_side;   /* which canonical side is the originator */
    uint32_t hist_seen;
    char history[32];
    uint8_t hist_len;
    int64_t start_ts, last_time, last_activity;
    int64_t attempt_at, delete_at, pclose_at;
    uint64_t id, first_pkt;
} zconn_t;

/* ------------------------------------------------------------------ Wireshark model */

#define WA_ZERO_WINDOW_PROBE 0x001
#define WA_ZERO_WINDOW 0x002
#define WA_LOST_PACKET 0x004
#define WA_KEEP_ALIVE 0x008
#define WA_WINDOW_UPDATE 0x010
#define WA_KEEP_ALIVE_ACK 0x020
#define WA_ZERO_WINDOW_PROBE_ACK 0x040
#define WA_DUPLICATE_ACK 0x080
#define WA_RETRANSMISSION 0x100
#define WA_FAST_RETRANSMISSION 0x200
#define WA_SPURIOUS_RETRANSMISSION 0x400
#define WA_OUT_OF_ORDER 0x800

typedef struct {
    uint32_t base_seq;
    uint8_t base_set;
    uint32_t nextseq, maxseqtobeacked, lastack, window, lastsegflags;
    int64_t nextseq_ts, lastack_ts;
    int32_t dupacknum;
} wsf_t;

typedef struct {
    wsf_t f[2];
    int64_t ts_mru_syn, first_rtt;
} wsc_t;

/* ------------------------------------------------------------------ flow table */

typedef struct {
    uint8_t a[16], b[16]; /* canonical: (a, pa) <= (b, pb) */
    uint16_t pa, pb;
    uint8_t family, z_active, w_active;
    int64_t last_seen;
    zconn_t z;
    wsc_t w;
} flow_t;

typedef struct {
    uint64_t hash;
    flow_t *flow;
} slot_t;

/* ------------------------------------------------------------------ the core object */

enum { FMT_UNKNOWN = 0, FMT_PCAP, FMT_PCAPNG };

typedef struct {
    int linktype;
    uint32_t snaplen;
    int64_t res_num, res_den; /* ns = units * num / den */
    int64_t offset_s;
} iface_t;

typedef struct {
    PyObject_HEAD
    int fmt;
    int big_endian; /* file (or current section) byte order */
    int nanos;
    int linktype;
    uint32_t snaplen, snap_limit;
    uint64_t offset;      /* absolute file offset of the next byte fed */
    uint64_t pkt_no;      /* records seen so far */
    int64_t last_ts;
    int have_ts;
    /* resync state */
    int resyncing;
    uint64_t resync_start, resync_pkt;
    uint8_t resync_reason;
    /* pcapng interfaces of the current section */
    iface_t *ifaces;
    int n_ifaces, cap_ifaces;
    /* flow table */
    slot_t *slots;
    size_t n_slots, n_flows;
    uint64_t next_conn_id;
    int64_t last_sweep_ts;
    uint64_t last_sweep_pkt;
    /* outputs */
    buf_t events, conns, damage;
    /* counters */
    uint64_t n_bytes, n_tcp, n_non_ip, n_non_tcp, n_fragments, n_malformed, n_bad_linktype, n_damaged;
    uint64_t n_rst, n_rexmit, n_ooo, n_keepalive, n_zwp, peak_flows;
} core_t;

static PyObject *FormatError;

/* ------------------------------------------------------------------ helpers: events */

static ev_t *new_event(core_t *C, const pkt_t *p, uint64_t conn_id, int kind, int subtype, int role)
{
    ev_t *e = buf_push(&C->events, sizeof(ev_t));
    if (!e)
        return NULL;
    e->ts_ns = p->ts;
    e->pkt_no = p->pkt_no;
    e->conn_id = conn_id;
    memcpy(e->saddr, p->src, 16);
    memcpy(e->daddr, p->dst, 16);
    e->seq = p->seq;
    e->ack = p->ack;
    e->payload = p->paylen;
    e->sport = p->sport;
    e->dport = p->dport;
    e->ipid = p->ipid;
    e->family = p->family;
    e->kind = (uint8_t)kind;
    e->subtype = (uint8_t)subtype;
    e->role = (uint8_t)role;
    e->flags = p->flags;
    e->ttl = p->ttl;
    return e;
}

static void add_damage(core_t *C, uint64_t pkt_no, uint64_t offset, uint64_t length, int reason)
{
    C->n_damaged++;
    if (C->damage.n / sizeof(dmg_t) >= 10000)
        return; /* counted, not listed */
    dmg_t *d = buf_push(&C->damage, sizeof(dmg_t));
    if (!d)
        return;
    d->pkt_no = pkt_no;
    d->offset = offset;
    d->length = length;
    d->reason = (uint8_t)reason;
}

/* ------------------------------------------------------------------ Zeek: history */

static inline int z_is_orig(const zconn_t *c, const zep_t *ep) { return (ep - c->e) == c->orig_side; }

static void z_add_history(zconn_t *c, char code)
{
    if (c->hist_len < sizeof(c->history) - 1)
        c->history[c->hist_len++] = code;
}

static void z_ep_add_history(zconn_t *c, zep_t *ep, char code)
{
    if (!z_is_orig(c, ep) && code >= 'A' && code <= 'Z')
        code = (char)(code - 'A' + 'a');
    z_add_history(c, code);
}

/* Zeek's CheckHistory: first time adds the letter and returns 0, later returns 1. */
static int z_check_history(zconn_t *c, zep_t *ep, uint32_t mask, char code)
{
    if (!z_is_orig(c, ep)) {
        mask <<= 16;
        if (code >= 'A' && code <= 'Z')
            code = (char)(code - 'A' + 'a');
    }
    if ((c->hist_seen & mask) == 0) {
        c->hist_seen |= mask;
        z_add_history(c, code);
        return 0;
    }
    return 1;
}

/* Letters logged at the 1st, 10th, 100th... occurrence. */
static void z_scaled(zconn_t *c, zep_t *ep, char upper, uint32_t *cnt, uint32_t *thresh)
{
    if (++*cnt == *thresh) {
        z_ep_add_history(c, ep, upper);
        uint32_t nt = *thresh * 10;
        if (nt > *thresh)
            *thresh = nt;
    }
}

static void z_set_state(zep_t *ep, int st)
{
    if (ep->state != st) {
        ep->prev_state = ep->state;
        ep->state = (uint8_t)st;
    }
}

static void z_flip(zconn_t *c)
{
    c->orig_side ^= 1;
    c->hist_seen = (c->hist_seen >> 16) | (c->hist_seen << 16);
    z_add_history(c, '^');
}

static uint64_t z_size(const zep_t *ep, const zep_t *peer)
{
    uint64_t last = ((uint64_t)ep->seq_wraps << 32) + ep->last_seq;
    uint64_t ack = ((uint64_t)ep->ack_wraps << 32) + ep->ack_seq;
    uint64_t start = ep->start_seq;
    if (ep->prev_state == Z_SYN_SENT && ep->state == Z_RESET && peer->state == Z_INACTIVE &&
        !(ack == start || ack == start + 1))
        return 0;
    uint64_t size = last > ack ? last - start : ack - start;
    if (size != 0)
        --size;
    if (ep->fin_cnt > 0 && size != 0)
        --size;
    return size;
}

static void z_init_seqs(zep_t *ep, uint32_t start, uint32_t last)
{
    ep->start_seq = start;
    ep->ack_seq = start;
    ep->last_seq = last;
    ep->seq_wraps = ep->ack_wraps = 0;
}

static void z_update_last_seq_raw(zep_t *ep, uint32_t s)
{
    if (s < ep->last_seq)
        ep->seq_wraps++;
    ep->last_seq = s;
}

static void z_update_ack_seq_raw(zep_t *ep, uint32_t s)
{
    if (s < ep->ack_seq)
        ep->ack_wraps++;
    ep->ack_seq = s;
}

static void z_new_conn(core_t *C, flow_t *f, int side, const pkt_t *p)
{
    zconn_t *c = &f->z;
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 2; i++) {
        c->e[i].rxmt_thresh = c->e[i].win0_thresh = 1;
    }
    c->orig_side = (uint8_t)side;
    c->start_ts = c->last_time = c->last_activity = p->ts;
    c->id = ++C->next_conn_id;
    c->first_pkt = p->pkt_no;
    f->z_active = 1;
}

/* Zeek's likely_server_ports (the defaults its base scripts register). */
static int likely_server_port(uint16_t port)
{
    switch (port) {
    case 21: case 22: case 23: case 25: case 53: case 80: case 81: case 88: case 102: case 110:
    case 111: case 135: case 139: case 143: case 179: case 389: case 443: case 445: case 502:
    case 563: case 585: case 587: case 614: case 631: case 636: case 989: case 990: case 992:
    case 993: case 994: case 995: case 1080: case 1433: case 1883: case 2049: case 2811:
    case 3128: case 3268: case 3306: case 3389: case 5060: case 5061: case 5222: case 5223:
    case 5269: case 5432: case 6379: case 6666: case 6667: case 6668: case 6669: case 8000:
    case 8080: case 8443: case 8883: case 8888: case 9200: case 11211: case 27017:
        return 1;
    default:
        return 0;
    }
}

/* Zeek's WantConnection: which side originates a connection first seen with this packet. */
static int z_origin_flip(const pkt_t *p)
{
    uint8_t fl = p->flags;
    if (!(fl & TH_SYN) || (fl & TH_ACK)) {
        if (likely_server_port(p->sport)) {
            if (likely_server_port(p->dport))
                return !(fl & TH_SYN) && p->sport < p->dport;
            return 1;
        }
    }
    return 0;
}

static int z_is_closed(const zconn_t *c) { return c->e[0].did_close || c->e[1].did_close; }

static int z_is_reuse(const zconn_t *c, const pkt_t *p)
{
    const zep_t *orig = &c->e[c->orig_side], *resp = &c->e[c->orig_side ^ 1];
    const zep_t *conn_orig = orig;
    if (!(p->flags & TH_SYN))
        return 0;
    if (p->flags & TH_ACK) {
        if (orig->state != Z_INACTIVE)
            return 0;
        conn_orig = resp;
    }
    if (!z_is_closed(c)) {
        if (p->seq == conn_orig->start_seq)
            return 0;
        if (!(p->flags & TH_ACK) && conn_orig->state == Z_SYN_ACK_SENT && resp->state == Z_INACTIVE &&
            p->seq == resp->start_seq)
            return 0;
    }
    return 1;
}

static int in_handshake(int st) { return st == Z_INACTIVE || st == Z_SYN_SENT || st == Z_SYN_ACK_SENT; }

/* Would Zeek have removed this connection by time `now` (its timers, evaluated lazily)? */
static int z_expired(const zconn_t *c, int64_t now)
{
    const zep_t *orig = &c->e[c->orig_side], *resp = &c->e[c->orig_side ^ 1];
    if (c->delete_at && now >= c->delete_at)
        return 1;
    if (c->attempt_at && now >= c->attempt_at &&
        (orig->state == Z_SYN_SENT || orig->state == Z_SYN_ACK_SENT) && resp->state == Z_INACTIVE)
        return 1;
    if (c->pclose_at && now >= c->pclose_at && orig->state != Z_INACTIVE && resp->state != Z_INACTIVE &&
        !(orig->did_close && resp->did_close) && orig->state != Z_RESET && resp->state != Z_RESET)
        return 1;
    int64_t idle = (in_handshake(orig->state) && in_handshake(resp->state)) ? HANDSHAKE_INACTIVITY : TCP_INACTIVITY;
    if (now - c->last_activity > idle)
        return 1;
    return 0;
}

static void z_connection_closed(zconn_t *c, zep_t *ep, zep_t *peer)
{
    if (ep->did_close)
        return;
    ep->did_close = 1;
    int complete = ep->state == Z_RESET || peer->did_close || peer->state == Z_INACTIVE;
    if (complete) {
        int64_t at = c->last_time + TCP_CLOSE_DELAY;
        if (!c->delete_at || at < c->delete_at)
            c->delete_at = at;
    } else if (ep->prev_state == Z_INACTIVE) {
        int64_t at = c->last_time + TCP_PARTIAL_CLOSE_DELAY;
        if (!c->pclose_at || at < c->pclose_at)
            c->pclose_at = at;
    }
}

static void z_process(zconn_t *c, zep_t *ep, zep_t *peer, const pkt_t *p)
{
    uint8_t fl = p->flags;
    int syn = fl & TH_SYN, fin = fl & TH_FIN, rst = fl & TH_RST, ackf = fl & TH_ACK;
    int len = (int)p->paylen;
    int is_orig = z_is_orig(c, ep);
    int seg_len = len + (syn ? 1 : 0) + (fin ? 1 : 0);
    if (rst)
        seg_len -= len;
    uint32_t base = p->seq, ack = p->ack;
    uint32_t past = base + (uint32_t)seg_len;

    /* init_endpoint */
    switch (ep->state) {
    case Z_INACTIVE:
        if (syn)
            z_init_seqs(ep, base, past);
        else
            z_init_seqs(ep, base - 1, base);
        break;
    case Z_SYN_SENT:
    case Z_SYN_ACK_SENT:
        if (syn && base != ep->start_seq)
            z_init_seqs(ep, base, past);
        break;
    case Z_ESTABLISHED:
    case Z_PARTIAL:
        if (syn)
            z_init_seqs(ep, base, past);
        break;
    case Z_RESET:
        if (syn && ep->prev_state == Z_INACTIVE)
            z_init_seqs(ep, base, past);
        break;
    default:
        break;
    }

    int64_t rel_seq = seq_delta(base, ep->start_seq);

    /* update_history */
    int bits = (syn ? 1 : 0) + (fin ? 1 : 0) + (rst ? 1 : 0);
    if (bits > 1) {
        if (fin && rst)
            z_check_history(c, ep, HIST_FIN_RST, 'I');
        else
            z_check_history(c, ep, HIST_MULTI, 'Q');
    } else if (bits == 1) {
        if (syn) {
            char code = ackf ? 'H' : 'S';
            if (z_check_history(c, ep, HIST_SYN, code) && rel_seq != ep->hist_last_syn)
                z_ep_add_history(c, ep, code);
            ep->hist_last_syn = rel_seq;
        }
        if (fin) {
            if (z_check_history(c, ep, HIST_FIN, 'F') && rel_seq + len != ep->hist_last_fin)
                z_ep_add_history(c, ep, 'F');
            ep->hist_last_fin = rel_seq + len;
        }
        if (rst) {
            if (z_check_history(c, ep, HIST_RST, 'R') && rel_seq != ep->hist_last_rst)
                z_ep_add_history(c, ep, 'R');
            ep->hist_last_rst = rel_seq;
        }
    } else {
        if (len)
            z_check_history(c, ep, HIST_DATA, 'D');
        else if (ackf)
            z_check_history(c, ep, HIST_ACK, 'A');
    }

    /* update_window */
    {
        uint32_t scale = (uint32_t)(ep->window_scale > 0 ? ep->window_scale : 0);
        uint32_t window = p->win << scale;
        if (window == 0 && !rst && peer->state != Z_CLOSED && ep->state != Z_RESET)
            z_scaled(c, ep, 'W', &ep->win0_cnt, &ep->win0_thresh);
        if (!syn && !fin && !rst && ep->state != Z_CLOSED && ep->state != Z_RESET) {
            if (seq_delta(base, ep->window_seq) >= 0 && seq_delta(ack, ep->window_ack_seq) >= 0) {
                ep->window = window;
                ep->window_ack_seq = ack;
                ep->window_seq = base;
            }
        }
    }

    if (!c->e[0].did_close || !c->e[1].did_close)
        c->last_time = p->ts;

    if (syn) {
        /* init_window */
        int scale = p->wscale;
        if (scale < 0) {
            if (ackf) {
                ep->window_scale = 0;
                peer->window_scale = 0;
            } else
                ep->window_scale = 0;
        } else {
            if (scale > 14)
                scale = 14;
            ep->window_scale = (int8_t)scale;
            ep->window_seq = base;
            ep->window_ack_seq = ack;
            peer->window_seq = ack;
            peer->window_ack_seq = base;
        }
    }
    if (fin)
        ep->fin_cnt++;
    if (rst)
        ep->rst_cnt++;

    if (ackf) {
        if (peer->state == Z_INACTIVE) {
            z_init_seqs(peer, ack - 1, ack - 1);
        } else {
            int underflow = seq_delta(ack, peer->start_seq) < 0;
            if (!underflow && !rst) {
                int32_t d = seq_delta(ack, peer->ack_seq);
                if (ack == 0 && d > TOO_LARGE_SEQ_DELTA)
                    ;
                else if (d > 0)
                    z_update_ack_seq_raw(peer, ack);
            }
        }
    }

    /* update_last_seq */
    int32_t delta_last = seq_delta(past, ep->last_seq);
    if ((syn || rst) && (delta_last > TOO_LARGE_SEQ_DELTA || delta_last < -TOO_LARGE_SEQ_DELTA))
        ;
    else if (fin && ep->last_seq == ep->start_seq + 1)
        z_update_last_seq_raw(ep, past);
    else if (ep->state == Z_RESET)
        ;
    else if (delta_last > 0)
        z_update_last_seq_raw(ep, past);
    else if (delta_last <= 0 && len > 0)
        z_scaled(c, ep, 'T', &ep->rxmt_cnt, &ep->rxmt_thresh);

    /* UpdateStateMachine */
    int do_close = 0;
    zep_t *orig = &c->e[c->orig_side];
    switch (ep->state) {
    case Z_INACTIVE:
        if (syn) {
            if (is_orig) {
                z_set_state(ep, ackf ? Z_SYN_ACK_SENT : Z_SYN_SENT);
                c->attempt_at = p->ts + TCP_ATTEMPT_DELAY;
            } else {
                if (!ackf && peer->state == Z_SYN_ACK_SENT && base == ep->start_seq) {
                    /* SYN/SYN-ACK reversal: flip the roles and establish. */
                    z_flip(c);
                    z_set_state(peer, Z_ESTABLISHED);
                }
                if (peer->state == Z_SYN_SENT)
                    z_set_state(peer, Z_ESTABLISHED);
                z_set_state(ep, Z_ESTABLISHED);
            }
        }
        if (fin) {
            z_set_state(ep, Z_CLOSED);
            do_close = 1;
        }
        if (rst) {
            z_set_state(ep, Z_RESET);
            do_close = 1;
        }
        if (ep->state == Z_INACTIVE) {
            orig = &c->e[c->orig_side];
            if (!is_orig && len == 0 && orig->state == Z_SYN_SENT)
                ;
            else if (ackf && peer->state == Z_ESTABLISHED)
                z_set_state(ep, Z_ESTABLISHED);
            else
                z_set_state(ep, Z_PARTIAL);
        }
        break;
    case Z_SYN_SENT:
    case Z_SYN_ACK_SENT:
        if (fin) {
            z_set_state(ep, Z_CLOSED);
            do_close = 1;
        }
        if (rst) {
            z_set_state(ep, Z_RESET);
            do_close = 1;
        }
        break;
    case Z_ESTABLISHED:
    case Z_PARTIAL:
        if (syn && ep->state == Z_PARTIAL && peer->state == Z_INACTIVE && !ackf)
            z_set_state(ep, Z_SYN_SENT);
        if (fin && !rst) {
            z_set_state(ep, Z_CLOSED);
            if (peer->state == Z_RESET && peer->prev_state == Z_CLOSED)
                z_set_state(peer, Z_CLOSED);
            do_close = 1;
        }
        if (rst) {
            z_set_state(ep, Z_RESET);
            do_close = 1;
        }
        break;
    case Z_CLOSED:
        if (rst && peer->state != Z_CLOSED) {
            z_set_state(ep, Z_RESET);
            if (!ep->did_close)
                do_close = 1;
        }
        break;
    case Z_RESET:
    default:
        break;
    }
    if (do_close)
        z_connection_closed(c, ep, peer);
}

/* ------------------------------------------------------------------ reset attribution */

static void classify_rst(core_t *C, flow_t *f, zep_t *S, zep_t *P, const pkt_t *p, int role)
{
    zconn_t *c = &f->z;
    int basis;
    if (P->sent_syn && !S->sent_syn && !S->sent_synack && !S->sent_data)
        basis = RST_REFUSED;
    else if (P->sent_synack && !S->sent_syn)
        basis = RST_SYNACK_REPLY;
    else if (S->sent_fin || P->sent_fin)
        basis = RST_AFTER_FIN;
    else if (S->pkts || P->pkts)
        basis = RST_ABORT;
    else
        basis = RST_UNMATCHED;

    int why = 0;
    if ((basis == RST_ABORT || basis == RST_AFTER_FIN) && P->sent_ack) {
        uint32_t rcv_nxt = P->last_ack_sent;
        uint32_t wnd = P->last_win_sent ? P->last_win_sent : 1;
        int32_t d = seq_delta(p->seq, rcv_nxt);
        /* RFC 793 allows any in-window sequence; one byte of slack below for FIN-ACK races */
        if (d < -1 || (uint32_t)d > wnd)
            why |= WHY_WINDOW;
    }
    if (S->have_ttl && p->ttl != S->ttl)
        why |= WHY_TTL;
    if (p->family == 4 && S->have_ipid && S->ipid != 0 && p->ipid != 0) {
        uint16_t d = (uint16_t)(p->ipid - S->ipid);
        if (d > 1024 && d < (uint16_t)(65536 - 16))
            why |= WHY_IPID;
    }
    ev_t *e = new_event(C, p, c->id, EV_RST, why ? RST_SUSPECT : basis, role);
    if (e) {
        e->basis = (uint8_t)basis;
        e->why = (uint8_t)why;
        e->expected_ttl = S->have_ttl ? S->ttl : 0;
        e->expected_ipid = S->have_ipid ? S->ipid : 0;
    }
    S->n_rst++;
    C->n_rst++;
}

static void note_sender(zep_t *S, const pkt_t *p)
{
    uint8_t fl = p->flags;
    if (fl & TH_SYN) {
        if (fl & TH_ACK)
            S->sent_synack = 1;
        else
            S->sent_syn = 1;
    }
    if (fl & TH_FIN)
        S->sent_fin = 1;
    if (p->paylen && !(fl & TH_RST))
        S->sent_data = 1;
    if (!(fl & TH_RST)) {
        if (fl & TH_ACK) {
            S->sent_ack = 1;
            S->last_ack_sent = p->ack;
            uint32_t scale = (fl & TH_SYN) ? 0 : (uint32_t)(S->window_scale > 0 ? S->window_scale : 0);
            S->last_win_sent = p->win << scale;
        }
        S->have_ttl = 1;
        S->ttl = p->ttl;
        if (p->family == 4) {
            S->have_ipid = 1;
            S->ipid = p->ipid;
        }
    }
}

/* ------------------------------------------------------------------ Wireshark analysis */

static void ws_new(flow_t *f)
{
    memset(&f->w, 0, sizeof(f->w));
    f->w.f[0].window = f->w.f[1].window = 0xFFFFFFFFu;
    f->w_active = 1;
}

#define LT_SEQ(x, y) ((int32_t)((x) - (y)) < 0)
#define GT_SEQ(x, y) ((int32_t)((y) - (x)) < 0)
#define LE_SEQ(x, y) ((int32_t)((x) - (y)) <= 0)

static uint32_t ws_analyze(wsc_t *w, int side, const pkt_t *p)
{
    wsf_t *fwd = &w->f[side], *rev = &w->f[side ^ 1];
    uint32_t seq = p->seq, ack = p->ack, seglen = p->paylen, window = p->win;
    uint8_t flags = p->flags;
    uint32_t ta = 0;

    if (!fwd->base_set) {
        fwd->base_seq = (flags & TH_SYN) ? seq : seq - 1;
        fwd->base_set = 1;
    }
    if (!rev->base_set && (flags & TH_ACK)) {
        rev->base_seq = ack - 1;
        rev->base_set = 1;
    }

    if (seglen == 1 && seq == fwd->nextseq && rev->window == 0) {
        ta |= WA_ZERO_WINDOW_PROBE;
        goto finished_fwd;
    }
    if (window == 0 && (flags & (TH_RST | TH_FIN | TH_SYN)) == 0)
        ta |= WA_ZERO_WINDOW;
    if (fwd->nextseq && GT_SEQ(seq, fwd->nextseq) && (flags & TH_RST) == 0)
        ta |= WA_LOST_PACKET;
    if ((seglen == 0 || seglen == 1) && seq == fwd->nextseq - 1 && (flags & (TH_SYN | TH_FIN | TH_RST)) == 0)
        ta |= WA_KEEP_ALIVE;
    if (seglen == 0 && window && window != fwd->window && seq == fwd->nextseq && ack == fwd->lastack &&
        (flags & (TH_SYN | TH_FIN | TH_RST)) == 0)
        ta |= WA_WINDOW_UPDATE;
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq && ack == fwd->lastack &&
        (rev->lastsegflags & WA_KEEP_ALIVE) && (flags & (TH_SYN | TH_FIN | TH_RST)) == 0) {
        ta |= WA_KEEP_ALIVE_ACK;
        goto finished_fwd;
    }
    if (seglen == 0 && window == 0 && window == fwd->window && seq == fwd->nextseq && ack == fwd->lastack &&
        (rev->lastsegflags & WA_ZERO_WINDOW_PROBE) && (flags & (TH_SYN | TH_FIN | TH_RST)) == 0) {
        ta |= WA_ZERO_WINDOW_PROBE_ACK;
        goto finished_fwd;
    }
    if (seglen == 0 && window && window == fwd->window && seq == fwd->nextseq && ack == fwd->lastack &&
        (flags & (TH_SYN | TH_FIN | TH_RST)) == 0) {
        fwd->dupacknum = fwd->dupacknum == -1 ? 1 : fwd->dupacknum + 1;
        ta |= WA_DUPLICATE_ACK;
    }

finished_fwd:
    if (ack != fwd->lastack)
        fwd->dupacknum = 0;

    if (rev->maxseqtobeacked && GT_SEQ(ack, rev->maxseqtobeacked) && (flags & TH_ACK)) {
        if (rev->maxseqtobeacked > rev->nextseq)
            rev->maxseqtobeacked = rev->nextseq;
        else
            rev->dupacknum = -1;
    }

    if (seglen > 0 || (flags & (TH_SYN | TH_FIN))) {
        int seq_not_advanced = fwd->nextseq && LT_SEQ(seq, fwd->nextseq);
        if (ta & WA_KEEP_ALIVE)
            goto finished_checking;
        if (seglen > 1 && fwd->nextseq - 1 == seq)
            seq_not_advanced = 0;
        if (seglen > 0 && rev->lastack && LE_SEQ(seq + seglen, rev->lastack)) {
            ta |= WA_SPURIOUS_RETRANSMISSION;
            goto finished_checking;
        }
        /* fast retransmission takes precedence over out-of-order (tcp.fastrt_supersedes_ooo) */
        if (seq_not_advanced && rev->dupacknum >= 2 && rev->lastack == seq && p->ts - rev->lastack_ts < 20000000) {
            ta |= WA_FAST_RETRANSMISSION;
            goto finished_checking;
        }
        {
            int64_t t = p->ts - fwd->nextseq_ts;
            int64_t thres = w->first_rtt ? w->first_rtt : 3000000;
            if (seq_not_advanced && t < thres &&
                fwd->nextseq != seq + seglen + ((flags & (TH_SYN | TH_FIN)) ? 1 : 0)) {
                ta |= WA_OUT_OF_ORDER;
                goto finished_checking;
            }
        }
        if (seq_not_advanced)
            ta |= WA_RETRANSMISSION;
    }

finished_checking:;
    uint32_t nextseq = seq + seglen;
    if (flags & (TH_SYN | TH_FIN))
        nextseq += 1;
    if (GT_SEQ(nextseq, fwd->nextseq) || !fwd->nextseq) {
        if (!(ta & WA_ZERO_WINDOW_PROBE)) {
            fwd->nextseq = nextseq;
            fwd->nextseq_ts = p->ts;
        }
    }
    if (seq == fwd->maxseqtobeacked || !fwd->maxseqtobeacked) {
        if (!(ta & WA_ZERO_WINDOW_PROBE))
            fwd->maxseqtobeacked = fwd->nextseq;
    }
    fwd->window = window;
    fwd->lastack = ack;
    fwd->lastack_ts = p->ts;
    fwd->lastsegflags = ta;
    return ta;
}

/* ------------------------------------------------------------------ flow table ops */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t key_hash(const uint8_t *a, const uint8_t *b, uint16_t pa, uint16_t pb)
{
    uint64_t w[4];
    memcpy(w, a, 16);
    memcpy(w + 2, b, 16);
    uint64_t h = mix64(w[0] ^ 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ w[1]);
    h = mix64(h ^ w[2]);
    h = mix64(h ^ w[3] ^ ((uint64_t)pa << 16) ^ pb);
    return h | 1; /* 0 marks an empty slot */
}

static int table_grow(core_t *C)
{
    size_t n = C->n_slots ? C->n_slots * 2 : 1 << 16;
    slot_t *ns = calloc(n, sizeof(slot_t));
    if (!ns)
        return -1;
    for (size_t i = 0; i < C->n_slots; i++) {
        if (!C->slots[i].hash)
            continue;
        size_t j = C->slots[i].hash & (n - 1);
        while (ns[j].hash)
            j = (j + 1) & (n - 1);
        ns[j] = C->slots[i];
    }
    free(C->slots);
    C->slots = ns;
    C->n_slots = n;
    return 0;
}

/* Linear probing with backward-shift deletion (no tombstones). */
static void table_delete_at(core_t *C, size_t i)
{
    size_t mask = C->n_slots - 1;
    free(C->slots[i].flow);
    C->slots[i].hash = 0;
    C->slots[i].flow = NULL;
    C->n_flows--;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!C->slots[j].hash)
            break;
        size_t home = C->slots[j].hash & mask;
        /* can the entry at j move to the hole at i? */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            C->slots[i] = C->slots[j];
            C->slots[j].hash = 0;
            C->slots[j].flow = NULL;
            i = j;
        }
    }
}

static flow_t *flow_lookup(core_t *C, const pkt_t *p, int *side)
{
    const uint8_t *a = p->src, *b = p->dst;
    uint16_t pa = p->sport, pb = p->dport;
    int s = 0;
    int cmp = memcmp(a, b, 16);
    if (cmp > 0 || (cmp == 0 && pa > pb)) {
        a = p->dst;
        b = p->src;
        pa = p->dport;
        pb = p->sport;
        s = 1;
    }
    *side = s;
    if (C->n_flows * 2 >= C->n_slots && table_grow(C) < 0)
        return NULL;
    uint64_t h = key_hash(a, b, pa, pb);
    size_t mask = C->n_slots - 1, i = h & mask;
    while (C->slots[i].hash) {
        if (C->slots[i].hash == h) {
            flow_t *f = C->slots[i].flow;
            if (f->pa == pa && f->pb == pb && f->family == p->family && !memcmp(f->a, a, 16) && !memcmp(f->b, b, 16))
                return f;
        }
        i = (i + 1) & mask;
    }
    flow_t *f = calloc(1, sizeof(flow_t));
    if (!f)
        return NULL;
    memcpy(f->a, a, 16);
    memcpy(f->b, b, 16);
    f->pa = pa;
    f->pb = pb;
    f->family = p->family;
    C->slots[i].hash = h;
    C->slots[i].flow = f;
    C->n_flows++;
    if (C->n_flows > C->peak_flows)
        C->peak_flows = C->n_flows;
    return f;
}

static int emit_conn(core_t *C, flow_t *f)
{
    zconn_t *c = &f->z;
    conn_out_t *o = buf_push(&C->conns, sizeof(conn_out_t));
    if (!o)
        return -1;
    int os = c->orig_side;
    zep_t *orig = &c->e[os], *resp = &c->e[os ^ 1];
    o->ts_start_ns = c->start_ts;
    o->ts_end_ns = c->last_time;
    o->conn_id = c->id;
    o->first_pkt = c->first_pkt;
    memcpy(o->orig_addr, os ? f->b : f->a, 16);
    memcpy(o->resp_addr, os ? f->a : f->b, 16);
    o->orig_port = os ? f->pb : f->pa;
    o->resp_port = os ? f->pa : f->pb;
    o->family = f->family;
    o->orig_state = orig->state;
    o->resp_state = resp->state;
    o->orig_pkts = orig->pkts;
    o->resp_pkts = resp->pkts;
    o->orig_ip_bytes = orig->ip_bytes;
    o->resp_ip_bytes = resp->ip_bytes;
    o->orig_bytes = z_size(orig, resp);
    o->resp_bytes = z_size(resp, orig);
    o->rst_orig = orig->n_rst;
    o->rst_resp = resp->n_rst;
    o->rexmit_orig = orig->n_rexmit;
    o->rexmit_resp = resp->n_rexmit;
    o->ooo_orig = orig->n_ooo;
    o->ooo_resp = resp->n_ooo;
    o->hist_len = c->hist_len;
    memcpy(o->history, c->history, sizeof(o->history));
    f->z_active = 0;
    return 0;
}

/* Finalise connections Zeek would have removed by `now`; forget idle flows entirely. */
static int sweep(core_t *C, int64_t now, int everything)
{
    for (size_t i = 0; i < C->n_slots;) {
        flow_t *f = C->slots[i].flow;
        if (!f) {
            i++;
            continue;
        }
        if (f->z_active && (everything || z_expired(&f->z, now)))
            if (emit_conn(C, f) < 0)
                return -1;
        /* Wireshark never forgets a conversation; we forget it after ten idle minutes so memory
           stays bounded (a tuple reused after that with the same ISN is the only difference). */
        if (!f->z_active && (everything || now - f->last_seen > 600 * NS)) {
            table_delete_at(C, i);
            continue; /* slot i now holds a shifted entry (or is empty) */
        }
        i++;
    }
    return 0;
}

/* ------------------------------------------------------------------ per packet */

static int handle_tcp(core_t *C, pkt_t *p)
{
    int side;
    flow_t *f = flow_lookup(C, p, &side);
    if (!f)
        return -1;
    C->n_tcp++;
    f->last_seen = p->ts;

    /* Zeek connection: expire, reuse, or create */
    if (f->z_active && (z_expired(&f->z, p->ts) || z_is_reuse(&f->z, p)))
        if (emit_conn(C, f) < 0)
            return -1;
    if (!f->z_active) {
        z_new_conn(C, f, side, p);
        if (z_origin_flip(p))
            z_flip(&f->z);
    }
    zconn_t *c = &f->z;
    zep_t *S = &c->e[side], *P = &c->e[side ^ 1];
    int role = (side == c->orig_side) ? 0 : 1;

    /* Wireshark conversation: a pure SYN with a new ISN starts a new one */
    if (!f->w_active)
        ws_new(f);
    else if ((p->flags & (TH_SYN | TH_ACK)) == TH_SYN && f->w.f[side].base_set && p->seq != f->w.f[side].base_seq)
        ws_new(f);

    if (p->flags & TH_RST)
        classify_rst(C, f, S, P, p, role);

    uint32_t ta = ws_analyze(&f->w, side, p);
    if ((p->flags & (TH_SYN | TH_ACK)) == TH_SYN)
        f->w.ts_mru_syn = p->ts;
    if ((p->flags & (TH_SYN | TH_ACK)) == TH_ACK && f->w.ts_mru_syn && !f->w.first_rtt)
        f->w.first_rtt = p->ts - f->w.ts_mru_syn;

    if (ta & (WA_RETRANSMISSION | WA_FAST_RETRANSMISSION | WA_SPURIOUS_RETRANSMISSION)) {
        int sub = (ta & WA_SPURIOUS_RETRANSMISSION) ? RX_SPURIOUS
                  : (ta & WA_FAST_RETRANSMISSION)  ? RX_FAST
                                                   : RX_RETRANSMISSION;
        if (!new_event(C, p, c->id, EV_RETRANSMIT, sub, role))
            return -1;
        S->n_rexmit++;
        C->n_rexmit++;
    } else if (ta & WA_OUT_OF_ORDER) {
        if (!new_event(C, p, c->id, EV_OOO, RX_OUT_OF_ORDER, role))
            return -1;
        S->n_ooo++;
        C->n_ooo++;
    }
    if (ta & WA_KEEP_ALIVE)
        C->n_keepalive++;
    if (ta & WA_ZERO_WINDOW_PROBE)
        C->n_zwp++;

    S->pkts++;
    S->ip_bytes += p->ip_len;
    c->last_activity = p->ts;
    z_process(c, S, P, p);
    note_sender(S, p);
    return 0;
}

static int parse_tcp(core_t *C, pkt_t *p, const uint8_t *t, uint32_t cap, uint32_t ip_payload)
{
    if (cap < 20 || ip_payload < 20) {
        C->n_malformed++;
        return 0;
    }
    uint32_t hlen = (uint32_t)(t[12] >> 4) * 4;
    if (hlen < 20 || hlen > ip_payload) {
        C->n_malformed++;
        return 0;
    }
    p->sport = be16(t);
    p->dport = be16(t + 2);
    p->seq = be32(t + 4);
    p->ack = be32(t + 8);
    p->flags = t[13];
    p->win = be16(t + 14);
    p->paylen = ip_payload - hlen;
    p->wscale = -1;
    if ((p->flags & TH_SYN) && hlen > 20) {
        uint32_t end = hlen < cap ? hlen : cap, i = 20;
        while (i < end) {
            uint8_t kind = t[i];
            if (kind == 0)
                break;
            if (kind == 1) {
                i++;
                continue;
            }
            if (i + 1 >= end)
                break;
            uint8_t olen = t[i + 1];
            if (olen < 2 || i + olen > end)
                break;
            if (kind == 3 && olen >= 3)
                p->wscale = t[i + 2];
            i += olen;
        }
    }
    return handle_tcp(C, p);
}

static const uint8_t V4_PREFIX[12] = {0};

static int parse_ipv4(core_t *C, pkt_t *p, const uint8_t *d, uint32_t cap)
{
    static uint8_t src[16], dst[16];
    if (cap < 20 || (d[0] >> 4) != 4) {
        C->n_malformed++;
        return 0;
    }
    uint32_t ihl = (uint32_t)(d[0] & 0x0f) * 4;
    uint32_t total = be16(d + 2);
    if (ihl < 20 || cap < ihl) {
        C->n_malformed++;
        return 0;
    }
    if (total == 0) /* TSO: the length was never filled in */
        total = cap;
    if (total < ihl) {
        C->n_malformed++;
        return 0;
    }
    if (be16(d + 6) & 0x3fff) { /* MF or a fragment offset */
        C->n_fragments++;
        return 0;
    }
    if (d[9] != 6) {
        C->n_non_tcp++;
        return 0;
    }
    memcpy(src, V4_PREFIX, 12);
    memcpy(dst, V4_PREFIX, 12);
    memcpy(src + 12, d + 12, 4);
    memcpy(dst + 12, d + 16, 4);
    p->src = src;
    p->dst = dst;
    p->family = 4;
    p->ttl = d[8];
    p->ipid = be16(d + 4);
    p->ip_len = total;
    uint32_t tcap = (cap < total ? cap : total) - ihl;
    return parse_tcp(C, p, d + ihl, tcap, total - ihl);
}

static int parse_ipv6(core_t *C, pkt_t *p, const uint8_t *d, uint32_t cap)
{
    if (cap < 40 || (d[0] >> 4) != 6) {
        C->n_malformed++;
        return 0;
    }
    uint32_t plen = be16(d + 4);
    if (plen == 0) /* jumbogram or TSO */
        plen = cap - 40;
    uint8_t nh = d[6];
    uint32_t off = 40, end = 40 + plen;
    while (nh != 6) {
        if (nh == 0 || nh == 43 || nh == 60 || nh == 51) {
            if (off + 8 > cap || off + 8 > end) {
                C->n_malformed++;
                return 0;
            }
            uint32_t l = nh == 51 ? ((uint32_t)d[off + 1] + 2) * 4 : ((uint32_t)d[off + 1] + 1) * 8;
            nh = d[off];
            off += l;
        } else if (nh == 44) {
            if (off + 8 > cap) {
                C->n_malformed++;
                return 0;
            }
            C->n_fragments++;
            return 0;
        } else {
            C->n_non_tcp++;
            return 0;
        }
    }
    if (off > end || off > cap) {
        C->n_malformed++;
        return 0;
    }
    p->src = d + 8;
    p->dst = d + 24;
    p->family = 6;
    p->ttl = d[7];
    p->ipid = 0;
    p->ip_len = 40 + plen;
    uint32_t tcap = (cap < end ? cap : end) - off;
    return parse_tcp(C, p, d + off, tcap, end - off);
}

static int is_vlan(uint16_t t) { return t == 0x8100 || t == 0x88a8 || t == 0x9100 || t == 0x9200; }

/* `type` is the ethertype found before `off`; VLAN tags sit at `off`. */
static int parse_ethertype(core_t *C, pkt_t *p, uint16_t type, const uint8_t *d, uint32_t off, uint32_t cap)
{
    while (is_vlan(type)) {
        if (off + 4 > cap) {
            C->n_malformed++;
            return 0;
        }
        type = be16(d + off + 2);
        off += 4;
    }
    if (type == 0x0800)
        return parse_ipv4(C, p, d + off, cap - off);
    if (type == 0x86dd)
        return parse_ipv6(C, p, d + off, cap - off);
    C->n_non_ip++;
    return 0;
}

static int parse_ip_any(core_t *C, pkt_t *p, const uint8_t *d, uint32_t cap)
{
    if (cap < 1) {
        C->n_malformed++;
        return 0;
    }
    if ((d[0] >> 4) == 4)
        return parse_ipv4(C, p, d, cap);
    if ((d[0] >> 4) == 6)
        return parse_ipv6(C, p, d, cap);
    C->n_non_ip++;
    return 0;
}

static int handle_packet(core_t *C, int linktype, const uint8_t *d, uint32_t cap, int64_t ts)
{
    pkt_t p;
    memset(&p, 0, sizeof(p));
    p.ts = ts;
    p.pkt_no = C->pkt_no;
    C->last_ts = ts;
    C->have_ts = 1;
    C->n_bytes += cap;
    /* Zeek timers and bounded memory: every 64k packets sweep flows idle past their timers */
    if (C->pkt_no - C->last_sweep_pkt >= 65536 && ts - C->last_sweep_ts >= NS) {
        C->last_sweep_pkt = C->pkt_no;
        C->last_sweep_ts = ts;
        if (sweep(C, ts, 0) < 0)
            return -1;
    }
    switch (linktype) {
    case 1: /* Ethernet */
        if (cap < 14) {
            C->n_malformed++;
            return 0;
        }
        {
            uint16_t type = be16(d + 12);
            if (type <= 1500) { /* 802.3 length; only LLC/SNAP carries IP */
                if (cap >= 22 && d[14] == 0xaa && d[15] == 0xaa && d[16] == 0x03)
                    return parse_ethertype(C, &p, be16(d + 20), d, 22, cap);
                C->n_non_ip++;
                return 0;
            }
            return parse_ethertype(C, &p, type, d, 14, cap);
        }
    case 113: /* Linux cooked v1 */
        if (cap < 16) {
            C->n_malformed++;
            return 0;
        }
        return parse_ethertype(C, &p, be16(d + 14), d, 16, cap);
    case 276: /* Linux cooked v2 */
        if (cap < 20) {
            C->n_malformed++;
            return 0;
        }
        return parse_ethertype(C, &p, be16(d), d, 20, cap);
    case 0:   /* BSD null: address family in the capturing host's byte order */
    case 108: /* OpenBSD loop: network byte order */
        if (cap < 4) {
            C->n_malformed++;
            return 0;
        }
        {
            uint32_t fam_le = le32(d), fam_be = be32(d);
            uint32_t fam = linktype == 108 ? fam_be : (fam_le < 256 ? fam_le : fam_be);
            if (fam == 2)
                return parse_ipv4(C, &p, d + 4, cap - 4);
            if (fam == 24 || fam == 28 || fam == 30 || fam == 10)
                return parse_ipv6(C, &p, d + 4, cap - 4);
            C->n_non_ip++;
            return 0;
        }
    case 101: /* raw IP */
    case 12:
    case 14:
        return parse_ip_any(C, &p, d, cap);
    case 228:
        return parse_ipv4(C, &p, d, cap);
    case 229:
        return parse_ipv6(C, &p, d, cap);
    default:
        C->n_bad_linktype++;
        return 0;
    }
}

/* ------------------------------------------------------------------ classic pcap */

static int pcap_hdr_ok(core_t *C, const uint8_t *h, uint32_t *incl_out, int64_t *ts_out, int strict_snap)
{
    uint32_t sec, frac, incl, orig;
    if (C->big_endian) {
        sec = be32(h), frac = be32(h + 4), incl = be32(h + 8), orig = be32(h + 12);
    } else {
        sec = le32(h), frac = le32(h + 4), incl = le32(h + 8), orig = le32(h + 12);
    }
    uint32_t limit = strict_snap ? C->snap_limit : 262144;
    if (incl > limit || orig < incl)
        return 0;
    if (frac >= (C->nanos ? 1000000000u : 1000000u))
        return 0;
    if (C->have_ts) {
        int64_t last_s = C->last_ts / NS;
        if ((int64_t)sec < last_s - 86400LL * 366 || (int64_t)sec > last_s + 86400LL * 366)
            return 0;
    }
    *incl_out = incl;
    *ts_out = (int64_t)sec * NS + (C->nanos ? (int64_t)frac : (int64_t)frac * 1000);
    return 1;
}

/* Does a plausible record start at q, followed by another plausible record (or the end)? */
static int pcap_resync_ok(core_t *C, const uint8_t *d, size_t n, size_t q, int final, int *need_more)
{
    uint32_t incl, incl2;
    int64_t ts;
    *need_more = 0;
    if (q + 16 > n) {
        *need_more = !final;
        return 0;
    }
    if (!pcap_hdr_ok(C, d + q, &incl, &ts, 1))
        return 0;
    size_t next = q + 16 + incl;
    if (next == n && final)
        return 1;
    if (next + 16 > n) {
        *need_more = !final;
        return 0;
    }
    return pcap_hdr_ok(C, d + next, &incl2, &ts, 0);
}

static Py_ssize_t feed_pcap(core_t *C, const uint8_t *d, size_t n, int final)
{
    size_t pos = 0;
    for (;;) {
        if (C->resyncing) {
            int need_more = 0, found = 0;
            while (pos + 16 <= n || final) {
                if (pcap_resync_ok(C, d, n, pos, final, &need_more)) {
                    found = 1;
                    break;
                }
                if (need_more)
                    break;
                if (pos >= n)
                    break;
                pos++;
            }
            if (found) {
                add_damage(C, C->resync_pkt, C->resync_start, C->offset + pos - C->resync_start, C->resync_reason);
                C->resyncing = 0;
            } else if (final) {
                add_damage(C, C->resync_pkt, C->resync_start, C->offset + n - C->resync_start, DMG_GARBAGE_TO_EOF);
                C->resyncing = 0;
                return (Py_ssize_t)n;
            } else {
                return (Py_ssize_t)pos; /* keep the undecided tail */
            }
        }
        if (pos == n)
            return (Py_ssize_t)pos;
        if (pos + 16 > n) {
            if (!final)
                return (Py_ssize_t)pos;
            add_damage(C, C->pkt_no + 1, C->offset + pos, n - pos, DMG_TRUNCATED_HEADER);
            return (Py_ssize_t)n;
        }
        uint32_t incl;
        int64_t ts;
        if (!pcap_hdr_ok(C, d + pos, &incl, &ts, 0)) {
            C->resyncing = 1;
            C->resync_start = C->offset + pos;
            C->resync_pkt = C->pkt_no + 1;
            C->resync_reason = DMG_GARBAGE;
            pos++;
            continue;
        }
        if (pos + 16 + incl > n) {
            if (!final)
                return (Py_ssize_t)pos;
            add_damage(C, C->pkt_no + 1, C->offset + pos, n - pos, DMG_TRUNCATED_RECORD);
            return (Py_ssize_t)n;
        }
        if (incl > C->snap_limit) {
            /* longer than the snap length: skip it if the next record header confirms its length */
            uint32_t incl2;
            int64_t ts2;
            size_t next = pos + 16 + incl;
            if (next + 16 > n && !final)
                return (Py_ssize_t)pos;
            if (next == n || (next + 16 <= n && pcap_hdr_ok(C, d + next, &incl2, &ts2, 0))) {
                C->pkt_no++;
                add_damage(C, C->pkt_no, C->offset + pos, 16 + incl, DMG_OVERSIZED);
                pos = next;
                continue;
            }
            C->resyncing = 1;
            C->resync_start = C->offset + pos;
            C->resync_pkt = C->pkt_no + 1;
            C->resync_reason = DMG_OVERSIZED;
            pos++;
            continue;
        }
        C->pkt_no++;
        if (handle_packet(C, C->linktype, d + pos + 16, incl, ts) < 0)
            return -1;
        pos += 16 + incl;
    }
}

/* ------------------------------------------------------------------ pcapng */

static inline uint32_t ng32(core_t *C, const uint8_t *p) { return C->big_endian ? be32(p) : le32(p); }
static inline uint16_t ng16(core_t *C, const uint8_t *p) { return C->big_endian ? be16(p) : le16(p); }

#define NG_SHB 0x0A0D0D0Au
#define NG_MAX_BLOCK (64u << 20)

static int ng_add_iface(core_t *C, const uint8_t *b, uint32_t len)
{
    if (C->n_ifaces == C->cap_ifaces) {
        int cap = C->cap_ifaces ? C->cap_ifaces * 2 : 8;
        iface_t *ni = realloc(C->ifaces, (size_t)cap * sizeof(iface_t));
        if (!ni)
            return -1;
        C->ifaces = ni;
        C->cap_ifaces = cap;
    }
    iface_t *ifc = &C->ifaces[C->n_ifaces++];
    ifc->linktype = ng16(C, b + 8);
    ifc->snaplen = ng32(C, b + 12);
    ifc->res_num = 1000;
    ifc->res_den = 1;
    ifc->offset_s = 0;
    uint32_t o = 16;
    while (o + 4 <= len - 4) {
        uint16_t code = ng16(C, b + o), olen = ng16(C, b + o + 2);
        if (code == 0 || o + 4 + olen > len - 4)
            break;
        const uint8_t *v = b + o + 4;
        if (code == 9 && olen >= 1) {
            uint8_t r = v[0];
            if (r & 0x80) { /* 2^-k seconds */
                int k = r & 0x7f;
                if (k <= 62) {
                    ifc->res_num = NS;
                    ifc->res_den = (int64_t)1 << k;
                }
            } else if (r <= 9) {
                int64_t num = 1;
                for (int i = r; i < 9; i++)
                    num *= 10;
                ifc->res_num = num;
                ifc->res_den = 1;
            } else if (r <= 18) {
                int64_t den = 1;
                for (int i = 9; i < r; i++)
                    den *= 10;
                ifc->res_num = 1;
                ifc->res_den = den;
            }
        } else if (code == 14 && olen >= 8) {
            uint64_t hi = ng32(C, v), lo = ng32(C, v + 4);
            ifc->offset_s = C->big_endian ? (int64_t)((hi << 32) | lo) : (int64_t)((lo << 32) | hi);
        }
        o += 4 + ((olen + 3u) & ~3u);
    }
    return 0;
}

static int64_t ng_ts(const iface_t *ifc, uint32_t hi, uint32_t lo)
{
    uint64_t units = ((uint64_t)hi << 32) | lo;
    __int128 v = (__int128)units * ifc->res_num / ifc->res_den;
    return (int64_t)v + ifc->offset_s * NS;
}

/* Byte order of a section header at p (needs 12 bytes): 1 big, 0 little, -1 neither. */
static int ng_shb_order(const uint8_t *p)
{
    uint32_t bom = be32(p + 8);
    if (bom == 0x1A2B3C4Du)
        return 1;
    if (bom == 0x4D3C2B1Au)
        return 0;
    return -1;
}

static int ng_known_type(uint32_t t)
{
    return t == 1 || t == 2 || t == 3 || t == 4 || t == 5 || t == 6 || t == 9 || t == 10 || t == NG_SHB;
}

/* 1: a whole valid block at q; 0: not; -1: undecided (needs more data). */
static int ng_block_ok(core_t *C, const uint8_t *d, size_t n, size_t q, int final, uint32_t *len_out)
{
    if (q + 12 > n)
        return final ? 0 : -1;
    uint32_t type = be32(d + q);
    int saved = C->big_endian, order = C->big_endian;
    if (type == NG_SHB) {
        order = ng_shb_order(d + q);
        if (order < 0)
            return 0;
    }
    C->big_endian = order;
    uint32_t len = ng32(C, d + q + 4);
    if (type != NG_SHB)
        type = ng32(C, d + q);
    int ok = 1;
    if (!ng_known_type(type) && !(type & 0x80000000u))
        ok = 0;
    if (len < 12 || (len & 3) || len > NG_MAX_BLOCK)
        ok = 0;
    if (ok && q + len > n)
        ok = final ? 0 : -1;
    if (ok == 1 && ng32(C, d + q + len - 4) != len)
        ok = 0;
    C->big_endian = saved;
    if (ok == 1)
        *len_out = len;
    return ok;
}

static Py_ssize_t feed_pcapng(core_t *C, const uint8_t *d, size_t n, int final)
{
    size_t pos = 0;
    for (;;) {
        if (C->resyncing) {
            int found = 0;
            uint32_t len;
            while (pos < n) {
                int r = ng_block_ok(C, d, n, pos, final, &len);
                if (r == 1) {
                    found = 1;
                    break;
                }
                if (r < 0)
                    return (Py_ssize_t)pos;
                pos++;
            }
            if (found) {
                add_damage(C, C->resync_pkt, C->resync_start, C->offset + pos - C->resync_start, C->resync_reason);
                C->resyncing = 0;
            } else {
                if (!final)
                    return (Py_ssize_t)pos;
                add_damage(C, C->resync_pkt, C->resync_start, C->offset + n - C->resync_start, DMG_GARBAGE_TO_EOF);
                C->resyncing = 0;
                return (Py_ssize_t)n;
            }
        }
        if (pos == n)
            return (Py_ssize_t)pos;
        uint32_t len;
        int r = ng_block_ok(C, d, n, pos, final, &len);
        if (r < 0)
            return (Py_ssize_t)pos;
        if (r == 0) {
            if (final && n - pos < 12) {
                add_damage(C, C->pkt_no + 1, C->offset + pos, n - pos, DMG_TRUNCATED_HEADER);
                return (Py_ssize_t)n;
            }
            if (final && pos + 8 <= n) {
                /* a plausible header whose block runs past the end: a truncated file */
                uint32_t type = be32(d + pos);
                int order = type == NG_SHB ? ng_shb_order(d + pos) : C->big_endian;
                if (order >= 0) {
                    int saved = C->big_endian;
                    C->big_endian = order;
                    uint32_t l = ng32(C, d + pos + 4);
                    C->big_endian = saved;
                    if (l >= 12 && !(l & 3) && l <= NG_MAX_BLOCK && pos + l > n) {
                        add_damage(C, C->pkt_no + 1, C->offset + pos, n - pos, DMG_TRUNCATED_RECORD);
                        return (Py_ssize_t)n;
                    }
                }
            }
            C->resyncing = 1;
            C->resync_start = C->offset + pos;
            C->resync_pkt = C->pkt_no + 1;
            C->resync_reason = DMG_BAD_BLOCK;
            pos++;
            continue;
        }
        const uint8_t *b = d + pos;
        uint32_t type = be32(b);
        if (type == NG_SHB) {
            C->big_endian = ng_shb_order(b);
            C->n_ifaces = 0;
        } else {
            type = ng32(C, b);
            if (type == 1) {
                if (len >= 20 && ng_add_iface(C, b, len) < 0)
                    return -1;
            } else if (type == 6 || type == 2) {
                C->pkt_no++;
                if (len < 32) {
                    add_damage(C, C->pkt_no, C->offset + pos, len, DMG_BAD_BLOCK);
                } else {
                    uint32_t ifid = type == 6 ? ng32(C, b + 8) : ng16(C, b + 8);
                    uint32_t caplen = ng32(C, b + 20);
                    if (ifid >= (uint32_t)C->n_ifaces)
                        add_damage(C, C->pkt_no, C->offset + pos, len, DMG_UNKNOWN_INTERFACE);
                    else if (28 + (uint64_t)caplen > len - 4)
                        add_damage(C, C->pkt_no, C->offset + pos, len, DMG_BAD_BLOCK);
                    else {
                        iface_t *ifc = &C->ifaces[ifid];
                        int64_t ts = ng_ts(ifc, ng32(C, b + 12), ng32(C, b + 16));
                        if (handle_packet(C, ifc->linktype, b + 28, caplen, ts) < 0)
                            return -1;
                    }
                }
            } else if (type == 3) {
                C->pkt_no++;
                if (C->n_ifaces < 1 || len < 16)
                    add_damage(C, C->pkt_no, C->offset + pos, len, DMG_UNKNOWN_INTERFACE);
                else {
                    uint32_t orig = ng32(C, b + 8), caplen = len - 16;
                    if (orig < caplen)
                        caplen = orig;
                    if (C->ifaces[0].snaplen && C->ifaces[0].snaplen < caplen)
                        caplen = C->ifaces[0].snaplen;
                    if (handle_packet(C, C->ifaces[0].linktype, b + 12, caplen, C->last_ts) < 0)
                        return -1;
                }
            }
        }
        pos += len;
    }
}

/* ------------------------------------------------------------------ Python methods */

static PyObject *core_feed(core_t *C, PyObject *args)
{
    Py_buffer buf;
    int final = 0;
    if (!PyArg_ParseTuple(args, "y*|p", &buf, &final))
        return NULL;
    const uint8_t *d = buf.buf;
    size_t n = (size_t)buf.len, pos = 0;
    Py_ssize_t used = 0;
    if (C->fmt == FMT_UNKNOWN) {
        if (n < 4) {
            PyBuffer_Release(&buf);
            if (final) {
                PyErr_SetString(FormatError, n ? "file too short to be a capture" : "file is empty");
                return NULL;
            }
            return PyLong_FromLong(0);
        }
        uint32_t m = be32(d);
        if (m == NG_SHB) {
            C->fmt = FMT_PCAPNG;
        } else {
            if (n < 24) {
                PyBuffer_Release(&buf);
                if (final) {
                    PyErr_SetString(FormatError, "truncated pcap file header");
                    return NULL;
                }
                return PyLong_FromLong(0);
            }
            if (m == 0xa1b2c3d4u || m == 0xa1b23c4du) {
                C->big_endian = 1;
                C->nanos = m == 0xa1b23c4du;
            } else if (m == 0xd4c3b2a1u || m == 0x4d3cb2a1u) {
                C->big_endian = 0;
                C->nanos = m == 0x4d3cb2a1u;
            } else {
                PyBuffer_Release(&buf);
                PyErr_Format(FormatError, "not a pcap or pcapng file (magic 0x%08x)", m);
                return NULL;
            }
            C->fmt = FMT_PCAP;
            C->snaplen = C->big_endian ? be32(d + 16) : le32(d + 16);
            C->linktype = (int)((C->big_endian ? be32(d + 20) : le32(d + 20)) & 0xffff);
            C->snap_limit = (C->snaplen == 0 || C->snaplen > 262144) ? 262144 : C->snaplen;
            pos = 24;
            C->offset += 24;
        }
    }
    if (C->fmt == FMT_PCAP)
        used = feed_pcap(C, d + pos, n - pos, final);
    else
        used = feed_pcapng(C, d + pos, n - pos, final);
    PyBuffer_Release(&buf);
    if (used < 0)
        return PyErr_NoMemory();
    C->offset += (uint64_t)used;
    return PyLong_FromSsize_t((Py_ssize_t)pos + used);
}

static PyObject *take_buf(buf_t *b)
{
    PyObject *r = PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->n);
    b->n = 0;
    return r;
}

static PyObject *core_take_events(core_t *C, PyObject *unused) { return take_buf(&C->events); }
static PyObject *core_take_conns(core_t *C, PyObject *unused) { return take_buf(&C->conns); }
static PyObject *core_take_damage(core_t *C, PyObject *unused) { return take_buf(&C->damage); }

static PyObject *core_finish(core_t *C, PyObject *unused)
{
    if (sweep(C, C->last_ts, 1) < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *core_stats(core_t *C, PyObject *unused)
{
    return Py_BuildValue(
        "{s:s,s:i,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}",
        "format", C->fmt == FMT_PCAP ? "pcap" : C->fmt == FMT_PCAPNG ? "pcapng" : "unknown",
        "linktype", C->linktype,
        "packets", (unsigned long long)C->pkt_no,
        "bytes_fed", (unsigned long long)C->offset,
        "captured_bytes", (unsigned long long)C->n_bytes,
        "tcp_packets", (unsigned long long)C->n_tcp,
        "non_ip", (unsigned long long)C->n_non_ip,
        "non_tcp", (unsigned long long)C->n_non_tcp,
        "ip_fragments", (unsigned long long)C->n_fragments,
        "malformed", (unsigned long long)C->n_malformed,
        "unsupported_linktype", (unsigned long long)C->n_bad_linktype,
        "damaged", (unsigned long long)C->n_damaged,
        "resets", (unsigned long long)C->n_rst,
        "retransmissions", (unsigned long long)C->n_rexmit,
        "out_of_order", (unsigned long long)C->n_ooo,
        "keep_alives", (unsigned long long)C->n_keepalive,
        "zero_window_probes", (unsigned long long)C->n_zwp,
        "peak_flows", (unsigned long long)C->peak_flows);
}

static void core_dealloc(core_t *C)
{
    for (size_t i = 0; i < C->n_slots; i++)
        free(C->slots[i].flow);
    free(C->slots);
    free(C->ifaces);
    free(C->events.p);
    free(C->conns.p);
    free(C->damage.p);
    Py_TYPE(C)->tp_free((PyObject *)C);
}

static PyObject *core_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    core_t *C = (core_t *)type->tp_alloc(type, 0);
    if (!C)
        return NULL;
    if (table_grow(C) < 0) {
        Py_DECREF(C);
        return PyErr_NoMemory();
    }
    return (PyObject *)C;
}

static PyMethodDef core_methods[] = {
    {"feed", (PyCFunction)core_feed, METH_VARARGS,
     "feed(data, final=False) -> bytes consumed; keep the rest and pass it again with more data"},
    {"finish", (PyCFunction)core_finish, METH_NOARGS, "end of input: finalise every open connection"},
    {"take_events", (PyCFunction)core_take_events, METH_NOARGS, "packed event records so far (drained)"},
    {"take_connections", (PyCFunction)core_take_conns, METH_NOARGS, "packed connection records so far (drained)"},
    {"take_damage", (PyCFunction)core_take_damage, METH_NOARGS, "packed damaged-record reports (drained)"},
    {"stats", (PyCFunction)core_stats, METH_NOARGS, "counters"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tcpwatch.pcap._pcapcore.Core",
    .tp_basicsize = sizeof(core_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = core_new,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
    .tp_doc = "Streaming pcap/pcapng TCP analyser (Zeek conn states, Wireshark retransmissions)",
};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_pcapcore", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__pcapcore(void)
{
    if (PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m)
        return NULL;
    FormatError = PyErr_NewException("tcpwatch.pcap._pcapcore.FormatError", PyExc_ValueError, NULL);
    Py_INCREF(FormatError);
    PyModule_AddObject(m, "FormatError", FormatError);
    Py_INCREF(&CoreType);
    PyModule_AddObject(m, "Core", (PyObject *)&CoreType);
    PyModule_AddIntConstant(m, "EVENT_SIZE", sizeof(ev_t));
    PyModule_AddIntConstant(m, "CONN_SIZE", sizeof(conn_out_t));
    PyModule_AddIntConstant(m, "DAMAGE_SIZE", sizeof(dmg_t));
    return m;
}
