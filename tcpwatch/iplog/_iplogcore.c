/* C tokenizer for iptables LOG lines: whole buffers in, columns out.
 *
 * It holds no grammar of its own: configure() receives the tables from fields.py (contexts,
 * keys in kernel order, conversions, required keys, column types) and this file implements
 * each conversion exactly like grammar.py / envelopes.py, which are the reference. A line
 * either fills a whole row or none: every value written for a failing line is rolled back.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Conv and Col numbers: keep equal to fields.py */
enum { C_STR, C_UINT, C_HEX, C_HEX4, C_MAC, C_IPV4, C_IPV6, C_FLAG, C_TCPFLAG, C_SRC, C_PROTO,
       C_OPTHEX, C_INCOMPLETE, C_INNER, C_ARP, C_TRUNCATED, C_EXT };
enum { T_U8, T_U16, T_U32, T_U64, T_F64, T_BOOL, T_STR, T_CAT };

#define MAXCTX 16
#define MAXKEYS 40
#define MAXREQ 8
#define MAXCOLS 256
#define MAXTOK 512

typedef struct {
    char tok[16];
    int len, prefix, col, icol, conv, arg;
} Key;

typedef struct {
    Key keys[MAXKEYS];
    int nkeys, req[MAXREQ], nreq, ext_rank;
} Ctx;

typedef struct {
    char name[16];
    int len, ctx;
} ProtoMap;

/* role columns: [outer, inner] */
enum { R_TRUNCATED, R_INCOMPLETE, R_FRAG, R_IP6FRAG, R_IP6ID, R_IP6MF, R_IP6EXT, R_PROTO, R_SRC, NROLES };

static struct {
    int configured, ncols, types[MAXCOLS], nctx;
    Ctx ctx[MAXCTX];
    int hdr, ip4, ip6, arp, trailer, other, trailer_from[MAXCTX];
    ProtoMap protos[16];
    int nprotos;
    int role[NROLES][2];
    int c_lineno, c_ts, c_uptime, c_host, c_envelope, c_level, c_prefix, c_family, c_tslocal, c_saddr, c_daddr, c_dst;
} G;

static const int WIDTH[] = {1, 2, 4, 8, 8, 1, 4, 4};
static const uint64_t MAXV[] = {0xFFu, 0xFFFFu, 0xFFFFFFFFu, UINT64_MAX, 0, 0, 0, 0};

/* One part of the buffer is parsed by one thread into its own row range of shared column
 * buffers. Every row of a filled column is written exactly once, in order, in the form pandas
 * and Arrow keep it (masks 1 = missing, NaN for missing floats, int64 string offsets with a
 * validity bitmap), so Python wraps the memory as it is: no second pass, no copy, no fresh
 * pages beyond the result itself (on this machine fresh memory is what costs most). */
typedef struct {
    char *vals;       /* numbers, category codes: this part's rows of the shared buffer */
    uint8_t *mask;    /* 1 = missing (pandas); numbers only, not floats or codes (-1 there) */
    int64_t *off;     /* text: this part's offsets (rows + 1); categories: the values' offsets */
    uint8_t *bits;    /* text: this part's validity bitmap, own block */
    char *data;       /* text, category values: this part's bytes, own block */
    size_t dlen, dcap;
    uint32_t *slots;  /* categories: open-addressing table of code + 1 */
    size_t ncat, nslots, last_slot, cap_cat, hint;
    size_t filled;    /* rows below this one are written (value or missing) */
    size_t mark;      /* row + 1 while set in the row being parsed */
    int any;
} Column;

typedef struct {
    int col;
    size_t prev;
} Touch;

typedef struct {
    Column cols[MAXCOLS];
    size_t n, cap;
    Touch touched[MAXCOLS * 2];
    int ntouched;
} Out;

/* ---------------------------------------------------------------- column writes */

static int grow_data(Column *c, size_t extra) {
    if (c->dlen + extra <= c->dcap) return 0;
    size_t cap = c->dcap ? c->dcap * 2 : 1 << 16;
    while (cap < c->dlen + extra) cap *= 2;
    char *p = realloc(c->data, cap);
    if (!p) return -1;
    c->data = p;
    c->dcap = cap;
    return 0;
}

/* rows [c->filled, upto) are missing */
static void fill_missing(Column *c, int type, size_t upto) {
    size_t from = c->filled;
    if (upto <= from) return;
    if (type == T_STR) {
        for (size_t r = from; r < upto; r++) c->off[r + 1] = (int64_t)c->dlen;
    } else if (type == T_F64) {
        for (size_t r = from; r < upto; r++) ((double *)c->vals)[r] = NAN;
    } else if (type == T_CAT) {
        for (size_t r = from; r < upto; r++) ((int32_t *)c->vals)[r] = -1;
    } else {
        if (upto - from <= 8)   /* values under the mask stay as they are */
            for (size_t r = from; r < upto; r++) c->mask[r] = 1;
        else
            memset(c->mask + from, 1, upto - from);
    }
    c->filled = upto;
}

/* First write of column `col` in the current row: record it for rollback, fill the gap. */
static Column *begin(Out *o, int col, size_t prev) {
    Column *c = &o->cols[col];
    if (c->mark == o->n + 1) return c;
    o->touched[o->ntouched].col = col;
    o->touched[o->ntouched].prev = prev;
    if (o->ntouched < MAXCOLS * 2 - 1) o->ntouched++;
    fill_missing(c, G.types[col], o->n);
    c->mark = o->n + 1;
    c->filled = o->n + 1;
    /* c->mask[o->n] stays 0 (present): only missing rows are ever written */
    return c;
}

static void put_u(Out *o, int col, uint64_t v) {
    Column *c = begin(o, col, 0);
    size_t n = o->n;
    switch (G.types[col]) {
    case T_U8: case T_BOOL: ((uint8_t *)c->vals)[n] = (uint8_t)v; break;
    case T_U16: ((uint16_t *)c->vals)[n] = (uint16_t)v; break;
    case T_U32: ((uint32_t *)c->vals)[n] = (uint32_t)v; break;
    default: ((uint64_t *)c->vals)[n] = v; break;
    }
}

static void put_f(Out *o, int col, double v) {
    Column *c = begin(o, col, 0);
    ((double *)c->vals)[o->n] = v;
}

static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int grow_slots(Column *c) {
    size_t n = c->nslots ? c->nslots * 2 : 64;
    uint32_t *t = calloc(n, sizeof *t);
    if (!t) return -1;
    for (size_t k = 0; k < c->ncat; k++) {
        size_t i = hash_bytes(c->data + c->off[k], (size_t)(c->off[k + 1] - c->off[k])) & (n - 1);
        while (t[i]) i = (i + 1) & (n - 1);
        t[i] = (uint32_t)k + 1;
    }
    free(c->slots);
    c->slots = t;
    c->nslots = n;
    return 0;
}

static int same_value(Column *c, size_t k, const char *s, size_t len) {
    return (size_t)(c->off[k + 1] - c->off[k]) == len && memcmp(c->data + c->off[k], s, len) == 0;
}

/* The value's code in this part's categories, added when new (*added set). */
static int64_t category(Column *c, const char *s, size_t len, int *added) {
    *added = 0;
    if (c->hint < c->ncat && same_value(c, c->hint, s, len)) return (int64_t)c->hint;   /* as the line before */
    if ((c->ncat + 1) * 2 > c->nslots && grow_slots(c)) return -1;
    size_t i = hash_bytes(s, len) & (c->nslots - 1);
    for (; c->slots[i]; i = (i + 1) & (c->nslots - 1))
        if (same_value(c, c->slots[i] - 1, s, len)) return (int64_t)(c->hint = c->slots[i] - 1);
    if (c->ncat + 2 > c->cap_cat) {
        size_t cap = c->cap_cat ? c->cap_cat * 2 : 64;
        int64_t *off = realloc(c->off, cap * sizeof *off);
        if (!off) return -1;
        off[0] = 0;
        c->off = off;
        c->cap_cat = cap;
    }
    if (grow_data(c, len)) return -1;
    memcpy(c->data + c->dlen, s, len);
    c->dlen += len;
    c->off[c->ncat + 1] = (int64_t)c->dlen;
    c->slots[i] = (uint32_t)++c->ncat;
    c->last_slot = i;
    *added = 1;
    return (int64_t)(c->hint = c->ncat - 1);
}

static int put_s(Out *o, int col, const char *s, size_t len) {
    Column *c = &o->cols[col];
    if (c->mark == o->n + 1) return 0;  /* grammar sets each text column once per row */
    if (G.types[col] == T_CAT) {
        int added;
        int64_t code = category(c, s, len, &added);
        if (code < 0) return -1;
        begin(o, col, added);   /* rollback removes a value only this row added */
        ((int32_t *)c->vals)[o->n] = (int32_t)code;
        return 0;
    }
    if (grow_data(c, len)) return -1;
    begin(o, col, c->dlen);
    memcpy(c->data + c->dlen, s, len);
    c->dlen += len;
    c->off[o->n + 1] = (int64_t)c->dlen;
    c->bits[o->n >> 3] |= (uint8_t)(1u << (o->n & 7));
    return 0;
}

static int is_valid(Out *o, int col) { return col >= 0 && o->cols[col].mark == o->n + 1; }

static uint64_t get_u(Out *o, int col) {
    Column *c = &o->cols[col];
    switch (G.types[col]) {
    case T_U8: case T_BOOL: return ((uint8_t *)c->vals)[o->n];
    case T_U16: return ((uint16_t *)c->vals)[o->n];
    case T_U32: return ((uint32_t *)c->vals)[o->n];
    default: return ((uint64_t *)c->vals)[o->n];
    }
}

/* The line failed: its row is written again by the next line (or filled as missing). */
static void rollback(Out *o) {
    for (int i = 0; i < o->ntouched; i++) {
        int col = o->touched[i].col;
        Column *c = &o->cols[col];
        c->mark = 0;
        c->filled = o->n;
        if (G.types[col] == T_STR) {
            c->dlen = o->touched[i].prev;
            c->bits[o->n >> 3] &= (uint8_t)~(1u << (o->n & 7));
        } else if (G.types[col] == T_CAT && o->touched[i].prev) {   /* the newest value: no later probe passed it */
            c->slots[c->last_slot] = 0;
            c->ncat--;
            c->dlen = (size_t)c->off[c->ncat];
        }
    }
    o->ntouched = 0;
}

static void commit(Out *o) {
    for (int i = 0; i < o->ntouched; i++) o->cols[o->touched[i].col].any = 1;
    o->ntouched = 0;
    o->n++;
}

/* ---------------------------------------------------------------- value checks */

static int is_dig(char ch) { return ch >= '0' && ch <= '9'; }
static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* decimal digits only, value <= max; mirrors grammar._uint */
static int parse_dec(const char *s, size_t len, uint64_t max, uint64_t *out) {
    if (len == 0 || len > 20) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_dig(s[i])) return -1;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

static int parse_hex(const char *s, size_t len, uint64_t max, uint64_t *out) {
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { s += 2; len -= 2; }
    if (len == 0 || len > 20) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        int h = hexval(s[i]);
        if (h < 0) return -1;
        if (v > (UINT64_MAX >> 4)) return -1;
        v = (v << 4) | (uint64_t)h;
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

/* Dotted quad as inet_pton(AF_INET) accepts it: four decimal parts 0-255, no leading zeros. */
static int check_ipv4(const char *s, size_t len) {
    int parts = 0, digits = 0, value = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch >= '0' && ch <= '9') {
            if (digits && value == 0) return -1;
            value = value * 10 + (ch - '0');
            if (value > 255) return -1;
            if (!digits++ && ++parts > 4) return -1;
        } else if (ch == '.' && digits && parts < 4) {
            digits = value = 0;
        } else {
            return -1;
        }
    }
    return parts == 4 && digits ? 0 : -1;
}

static int check_addr(const char *s, size_t len, int family) {
    char buf[64];
    unsigned char bin[16];
    if (family == 4) return check_ipv4(s, len);
    if (len >= sizeof buf || memchr(s, 0, len)) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    return inet_pton(family == 6 ? AF_INET6 : AF_INET, buf, bin) == 1 ? 0 : -1;
}

static int check_mac(const char *s, size_t len) {
    if (len != 17) return -1;
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2) { if (s[i] != ':') return -1; }
        else if (hexval(s[i]) < 0) return -1;
    }
    return 0;
}

/* RFC 5952 text of a checked IPv6 address, as grammar.short_ipv6 writes it: lowercase hex
 * without leading zeros, the first longest run of two or more zero groups as "::". */
static size_t short_ipv6(const char *s, size_t len, char *out) {
    char buf[64];
    unsigned char b[16];
    unsigned w[8];
    memcpy(buf, s, len);
    buf[len] = 0;
    if (inet_pton(AF_INET6, buf, b) != 1) return 0;
    int best = -1, blen = 1;
    for (int i = 0; i < 8; i++) w[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && !w[j]) j++;
        if (j - i > blen) { best = i; blen = j - i; }
        i = j > i ? j : i + 1;
    }
    size_t n = 0;
    for (int i = 0; i < 8;) {
        if (i == best) { out[n++] = ':'; out[n++] = ':'; i += blen; continue; }
        if (n && out[n - 1] != ':') out[n++] = ':';
        int started = 0;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned d = (w[i] >> shift) & 0xF;
            if (d || started || shift == 0) { out[n++] = "0123456789abcdef"[d]; started = 1; }
        }
        i++;
    }
    return n;
}

/* saddr/daddr: the address in the schema's short form (the kernel logs IPv6 in full) */
static int put_endpoint(Out *o, int col, const char *v, size_t vl, int family) {
    char out[48];
    if (col < 0) return 0;
    if (family == 4) return put_s(o, col, v, vl);
    size_t n = short_ipv6(v, vl, out);
    return put_s(o, col, n ? out : v, n ? n : vl);
}

/* ---------------------------------------------------------------- field grammar */

typedef struct {
    const char *tok[MAXTOK];
    size_t len[MAXTOK];
    int ntok, i, ctx, rank, inner, saved_ctx, saved_rank, terminal[2];
    uint64_t seen, saved_seen;
    Out *o;
    char err[200];
} St;

static int fail(St *st, const char *msg) {
    snprintf(st->err, sizeof st->err, "%s", msg);
    return -1;
}

static int failf_tok(St *st, const char *what, const char *tok, size_t len) {
    snprintf(st->err, sizeof st->err, "%s '%.*s'", what, (int)(len > 60 ? 60 : len), tok);
    return -1;
}

static int roll(St *st, int r) { return G.role[r][st->inner]; }

static int tok_is(St *st, int i, const char *lit) {
    size_t n = strlen(lit);
    return i < st->ntok && st->len[i] == n && memcmp(st->tok[i], lit, n) == 0;
}

static int key_match(const Key *k, const char *t, size_t len) {
    if (len == 0 || t[0] != k->tok[0]) return 0;
    if (k->prefix ? len < (size_t)k->len : len != (size_t)k->len) return 0;
    for (int i = 1; i < k->len; i++)   /* keys are a few bytes: no call */
        if (t[i] != k->tok[i]) return 0;
    return 1;
}

static int find_key(int ctx, int after, const char *t, size_t len) {
    const Ctx *c = &G.ctx[ctx];
    for (int r = after + 1; r < c->nkeys; r++)
        if (key_match(&c->keys[r], t, len)) return r;
    return -1;
}

static int exempt(St *st) {
    Out *o = st->o;
    int c;
    if (is_valid(o, roll(st, R_INCOMPLETE))) return 1;
    c = roll(st, R_TRUNCATED);
    if (is_valid(o, c) && get_u(o, c)) return 1;
    c = roll(st, R_FRAG);
    if (is_valid(o, c) && get_u(o, c)) return 1;
    c = roll(st, R_IP6FRAG);
    if (is_valid(o, c) && get_u(o, c)) return 1;
    return st->terminal[st->inner];
}

static int check_required(St *st) {
    const Ctx *c = &G.ctx[st->ctx];
    if (st->ctx == G.hdr && st->inner) return 0;
    if (st->ctx != G.hdr && exempt(st)) return 0;
    for (int i = 0; i < c->nreq; i++) {
        if (!(st->seen & (1ull << c->req[i]))) {
            snprintf(st->err, sizeof st->err, "%smissing %s", st->inner ? "quoted packet: " : "",
                     c->keys[c->req[i]].tok);
            return -1;
        }
    }
    return 0;
}

static int enter(St *st, int ctx) {
    if (check_required(st)) return -1;
    st->ctx = ctx;
    st->rank = -1;
    st->seen = 0;
    return 0;
}

static int col_of(St *st, const Key *k) { return st->inner ? k->icol : k->col; }

static int put_uint_checked(St *st, int col, const char *v, size_t len, int hex) {
    uint64_t x;
    if (col < 0) return fail(st, "field not allowed here");
    int rc = hex ? parse_hex(v, len, MAXV[G.types[col]], &x) : parse_dec(v, len, MAXV[G.types[col]], &x);
    if (rc) return failf_tok(st, "bad number", v, len);
    put_u(st->o, col, x);
    return 0;
}

static int apply(St *st, const Key *k, const char *t, size_t len);

static int ext_token_ok(const char *t, size_t n) {
    static const char *lits[] = {"OPT", "(", ")", "AH", "ESP", "Unknown", "Ext", "Hdr", "INCOMPLETE",
                                 "TRUNCATED", "bytes]", NULL};
    for (int i = 0; lits[i]; i++)
        if (strlen(lits[i]) == n && memcmp(lits[i], t, n) == 0) return 1;
    size_t i;
    if (n >= 5 && memcmp(t, "FRAG:", 5) == 0) {
        for (i = 5; i < n; i++) if (!is_dig(t[i])) return 0;
        return 1;
    }
    if (n >= 3 && memcmp(t, "ID:", 3) == 0) {
        for (i = 3; i < n; i++) if (hexval(t[i]) < 0) return 0;
        return 1;
    }
    if (n > 6 && memcmp(t, "SPI=0x", 6) == 0) {
        for (i = 6; i < n; i++) if (hexval(t[i]) < 0) return 0;
        return 1;
    }
    if (n > 1 && t[0] == '[') {
        for (i = 1; i < n; i++) if (!is_dig(t[i])) return 0;
        return 1;
    }
    if (n == 0) return 0;
    for (i = 0; i < n; i++) if (hexval(t[i]) < 0) return 0;
    return 1;
}

static int all_dig(const char *t, size_t n) {
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) if (!is_dig(t[i])) return 0;
    return 1;
}

static int ext_headers(St *st) {
    int start = st->i;
    char joined[2048];
    size_t jl = 0;
    while (st->i < st->ntok && !(st->len[st->i] >= 6 && memcmp(st->tok[st->i], "PROTO=", 6) == 0)) {
        const char *t = st->tok[st->i];
        size_t n = st->len[st->i];
        if (!ext_token_ok(t, n)) return failf_tok(st, "ip6: unexpected token in extension headers", t, n);
        int has_next = st->i + 1 < st->ntok;
        const char *nt = has_next ? st->tok[st->i + 1] : "";
        size_t nn = has_next ? st->len[st->i + 1] : 0;
        if (n >= 5 && memcmp(t, "FRAG:", 5) == 0) {
            if (n > 5) {
                if (put_uint_checked(st, roll(st, R_IP6FRAG), t + 5, n - 5, 0)) return -1;
            } else {
                if (!all_dig(nt, nn)) { nt = ""; nn = 0; }
                if (put_uint_checked(st, roll(st, R_IP6FRAG), nt, nn, 0)) return -1;
                st->i++;
            }
        } else if (n >= 3 && memcmp(t, "ID:", 3) == 0) {
            if (n > 3) {
                if (put_uint_checked(st, roll(st, R_IP6ID), t + 3, n - 3, 1)) return -1;
            } else {
                if (put_uint_checked(st, roll(st, R_IP6ID), nt, nn, 1)) return -1;
                st->i++;
            }
        } else if (n == 10 && memcmp(t, "INCOMPLETE", 10) == 0 && !(nn > 0 && nt[0] == '[')) {
            put_u(st->o, roll(st, R_IP6MF), 1);
        } else if ((n == 3 && memcmp(t, "ESP", 3) == 0) || (n == 7 && memcmp(t, "Unknown", 7) == 0) ||
                   (n == 9 && memcmp(t, "TRUNCATED", 9) == 0)) {
            st->terminal[st->inner] = 1;
        }
        st->i++;
    }
    for (int j = start; j < st->i; j++) {
        if (jl + st->len[j] + 1 >= sizeof joined) return fail(st, "ip6: extension headers too long");
        if (j > start) joined[jl++] = ' ';
        memcpy(joined + jl, st->tok[j], st->len[j]);
        jl += st->len[j];
    }
    if (put_s(st->o, roll(st, R_IP6EXT), joined, jl)) return fail(st, "out of memory");
    st->i--;
    st->rank = G.ctx[G.ip6].ext_rank;
    return 0;
}

static int incomplete(St *st) {
    int i = st->i;
    if (i + 2 < st->ntok && st->len[i + 1] > 1 && st->tok[i + 1][0] == '[' && tok_is(st, i + 2, "bytes]")) {
        if (put_uint_checked(st, roll(st, R_INCOMPLETE), st->tok[i + 1] + 1, st->len[i + 1] - 1, 0))
            return -1;
        st->i += 2;
        return 0;
    }
    if (i + 1 >= st->ntok || (st->inner && tok_is(st, i + 1, "]"))) {
        put_u(st->o, roll(st, R_TRUNCATED), 1);
        return 0;
    }
    return fail(st, "INCOMPLETE must be followed by [N bytes]");
}

static int apply(St *st, const Key *k, const char *t, size_t len) {
    const char *v = t + k->len;
    size_t vl = len - k->len;
    int col = col_of(st, k);
    Out *o = st->o;
    switch (k->conv) {
    case C_STR:
        if (col < 0) return fail(st, "field not allowed here");
        if (put_s(o, col, v, vl)) return fail(st, "out of memory");
        return 0;
    case C_UINT: return put_uint_checked(st, col, v, vl, 0);
    case C_HEX: return put_uint_checked(st, col, v, vl, 1);
    case C_HEX4: {
        uint64_t x;
        if (vl != 4 || parse_hex(v, vl, 0xFFFF, &x) || (v[1] == 'x' || v[1] == 'X'))
            return failf_tok(st, "not four hex digits", v, vl);
        put_u(o, col, x);
        return 0;
    }
    case C_MAC:
        if (check_mac(v, vl)) return failf_tok(st, "not a MAC address", v, vl);
        if (put_s(o, col, v, vl)) return fail(st, "out of memory");
        return 0;
    case C_IPV4: case C_IPV6:
        if (check_addr(v, vl, k->conv == C_IPV4 ? 4 : 6)) return failf_tok(st, "bad address", v, vl);
        if (put_s(o, col, v, vl)) return fail(st, "out of memory");
        if (col == G.c_dst && put_endpoint(o, G.c_daddr, v, vl, k->conv == C_IPV4 ? 4 : 6)) return fail(st, "out of memory");
        return 0;
    case C_FLAG: put_u(o, col, 1); return 0;
    case C_TRUNCATED: put_u(o, roll(st, R_TRUNCATED), 1); return 0;
    case C_TCPFLAG: {
        uint64_t cur = is_valid(o, col) ? get_u(o, col) : 0;
        put_u(o, col, cur | (uint64_t)k->arg);
        return 0;
    }
    case C_SRC: {
        int family = memchr(v, ':', vl) ? 6 : 4;
        if (check_addr(v, vl, family)) return failf_tok(st, "bad address", v, vl);
        if (put_s(o, roll(st, R_SRC), v, vl)) return fail(st, "out of memory");
        if (!st->inner) put_u(o, G.c_family, (uint64_t)family);
        if (!st->inner && put_endpoint(o, G.c_saddr, v, vl, family)) return fail(st, "out of memory");
        return enter(st, family == 6 ? G.ip6 : G.ip4);
    }
    case C_PROTO: {
        int next = -1;
        for (int i = 0; i < G.nprotos; i++)
            if ((size_t)G.protos[i].len == vl && memcmp(G.protos[i].name, v, vl) == 0) next = G.protos[i].ctx;
        if (next < 0) {
            uint64_t x;
            if (vl > 3 || parse_dec(v, vl, 255, &x)) return failf_tok(st, "unknown protocol", v, vl);
            next = G.other;
        }
        if (put_s(o, roll(st, R_PROTO), v, vl)) return fail(st, "out of memory");
        return enter(st, next);
    }
    case C_ARP:
        if (put_s(o, roll(st, R_PROTO), "ARP", 3)) return fail(st, "out of memory");
        return enter(st, G.arp);
    case C_OPTHEX: {
        int i = st->i + 1;
        if (tok_is(st, i, "(TRUNCATED)")) {
            put_u(o, roll(st, R_TRUNCATED), 1);
        } else {
            if (i >= st->ntok) return fail(st, "expected (HEX) after OPT");
            const char *p = st->tok[i];
            size_t n = st->len[i];
            if (n < 4 || p[0] != '(' || p[n - 1] != ')' || (n - 2) % 2) return fail(st, "expected (HEX) after OPT");
            for (size_t j = 1; j + 1 < n; j++) if (hexval(p[j]) < 0) return fail(st, "expected (HEX) after OPT");
            if (put_s(o, col, p + 1, n - 2)) return fail(st, "out of memory");
        }
        st->i++;
        return 0;
    }
    case C_INCOMPLETE: return incomplete(st);
    case C_INNER: {
        if (len == 11 && memcmp(t, "[TRUNCATED]", 11) == 0) {
            put_u(o, G.role[R_TRUNCATED][1], 1);
            return 0;
        }
        if (len < 5 || memcmp(t, "[SRC=", 5) != 0) return fail(st, "quoted packet must start with SRC=");
        if (check_required(st)) return -1;
        st->saved_ctx = st->ctx;
        st->saved_rank = st->rank;
        st->saved_seen = st->seen;
        st->inner = 1;
        st->ctx = G.hdr;
        st->rank = -1;
        st->seen = 0;
        const Ctx *h = &G.ctx[G.hdr];
        return apply(st, &h->keys[h->nkeys - 1], t + 1, len - 1);
    }
    case C_EXT: return ext_headers(st);
    }
    return fail(st, "internal: unknown conversion");
}

static int parse_fields(St *st, const char *s, size_t n) {
    st->ntok = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ') i++;
        if (i >= n) break;
        size_t j = i;
        while (j < n && s[j] != ' ') j++;   /* tokens are short: a loop beats a memchr call */
        if (st->ntok >= MAXTOK) return fail(st, "too many fields");
        st->tok[st->ntok] = s + i;
        st->len[st->ntok] = j - i;
        st->ntok++;
        i = j;
    }
    st->i = 0;
    st->ctx = G.hdr;
    st->rank = -1;
    st->inner = 0;
    st->seen = 0;
    st->terminal[0] = st->terminal[1] = 0;
    while (st->i < st->ntok) {
        const char *t = st->tok[st->i];
        size_t len = st->len[st->i];
        int r = find_key(st->ctx, st->rank, t, len);
        if (r < 0 && st->inner && len == 1 && t[0] == ']') {
            if (check_required(st)) return -1;
            st->inner = 0;
            st->ctx = st->saved_ctx;
            st->rank = st->saved_rank;
            st->seen = st->saved_seen;
            st->i++;
            continue;
        }
        if (r < 0 && !st->inner && G.trailer_from[st->ctx] && find_key(G.trailer, -1, t, len) >= 0) {
            if (enter(st, G.trailer)) return -1;
            r = find_key(G.trailer, -1, t, len);
        }
        if (r < 0) {
            int earlier = find_key(st->ctx, -1, t, len) >= 0;
            return failf_tok(st, earlier ? "out of order or repeated" : "unexpected", t, len);
        }
        st->rank = r;
        st->seen |= 1ull << r;
        if (apply(st, &G.ctx[st->ctx].keys[r], t, len)) return -1;
        st->i++;
    }
    if (st->inner) return fail(st, "quoted packet not closed with ']'");
    return check_required(st);
}

/* ---------------------------------------------------------------- envelopes */

static const char *MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec";
static const char *WDAYS = "MonTueWedThuFriSatSun";

static int month_at(const char *s, size_t n) {
    if (n < 3) return 0;
    for (int m = 0; m < 12; m++)
        if (s[0] == MONTHS[3 * m] && s[1] == MONTHS[3 * m + 1] && s[2] == MONTHS[3 * m + 2]) return m + 1;
    return 0;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int num_at(const char *s, size_t n, size_t pos, int digits, int *out) {
    if (pos + digits > n) return -1;
    int v = 0;
    for (int i = 0; i < digits; i++) {
        if (!is_dig(s[pos + i])) return -1;
        v = v * 10 + (s[pos + i] - '0');
    }
    *out = v;
    return 0;
}

/* fraction ".ddd" at pos: length consumed (0 if none) and its value */
static size_t frac_at(const char *s, size_t n, size_t pos, double *out) {
    *out = 0.0;
    if (pos >= n || s[pos] != '.') return 0;
    size_t j = pos + 1;
    while (j < n && is_dig(s[j])) j++;
    if (j == pos + 1) return 0;
    char buf[1024];
    size_t l = j - pos;
    if (l > 1020) l = 1020;
    buf[0] = '0';
    memcpy(buf + 1, s + pos, l);
    buf[l + 1] = 0;
    *out = strtod(buf, NULL);
    return j - pos;
}

static int clock_ts(int y, int mo, int d, int h, int mi, int sec, double frac, int64_t offset, double *out) {
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    int64_t whole = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    *out = (double)whole + frac;
    return 0;
}

/* ISO 8601 at pos; returns consumed length or 0; sets ts and whether it was local */
static size_t iso_at(const char *s, size_t n, size_t pos, double *ts, int *local, int *bad) {
    int y, mo, d, h, mi, sec;
    *bad = 0;
    if (num_at(s, n, pos, 4, &y) || pos + 19 > n || s[pos + 4] != '-' || num_at(s, n, pos + 5, 2, &mo) ||
        s[pos + 7] != '-' || num_at(s, n, pos + 8, 2, &d) || s[pos + 10] != 'T' ||
        num_at(s, n, pos + 11, 2, &h) || s[pos + 13] != ':' || num_at(s, n, pos + 14, 2, &mi) ||
        s[pos + 16] != ':' || num_at(s, n, pos + 17, 2, &sec))
        return 0;
    size_t j = pos + 19;
    double frac;
    j += frac_at(s, n, j, &frac);
    int64_t offset = 0;
    *local = 1;
    if (j < n && s[j] == 'Z') {
        *local = 0;
        j++;
    } else if (j < n && (s[j] == '+' || s[j] == '-')) {
        int oh, om;
        size_t k = j + 1;
        if (!num_at(s, n, k, 2, &oh)) {
            k += 2;
            if (k < n && s[k] == ':') k++;
            if (!num_at(s, n, k, 2, &om)) {
                offset = (int64_t)(oh * 3600 + om * 60) * (s[j] == '+' ? 1 : -1);
                *local = 0;
                j = k + 2;
            }
        }
    }
    if (clock_ts(y, mo, d, h, mi, sec, frac, offset, ts)) *bad = 1;
    return j - pos;
}

static size_t uptime_at(const char *s, size_t n, size_t pos, double *up) {
    if (pos >= n || s[pos] != '[') return 0;
    size_t j = pos + 1;
    while (j < n && s[j] == ' ') j++;
    size_t d0 = j;
    while (j < n && is_dig(s[j])) j++;
    if (j == d0 || j >= n || s[j] != '.') return 0;
    size_t f0 = ++j;
    while (j < n && is_dig(s[j])) j++;
    if (j - f0 != 6 || j + 1 >= n || s[j] != ']' || s[j + 1] != ' ') return 0;
    char buf[48];
    size_t l = j - d0;
    if (l >= sizeof buf) return 0;
    memcpy(buf, s + d0, l);
    buf[l] = 0;
    *up = strtod(buf, NULL);
    return j + 2 - pos;
}

static size_t tag_at(const char *s, size_t n, size_t pos) {
    size_t j;
    if (pos + 6 <= n && memcmp(s + pos, "kernel", 6) == 0) j = pos + 6;
    else if (pos + 5 <= n && memcmp(s + pos, "ulogd", 5) == 0) j = pos + 5;
    else return 0;
    if (j < n && s[j] == '[') {
        j++;
        while (j < n && is_dig(s[j])) j++;
        if (j >= n || s[j] != ']') return 0;
        j++;
    }
    if (j + 1 < n && s[j] == ':' && s[j + 1] == ' ') return j + 2 - pos;
    return 0;
}

typedef struct {
    const char *envelope;
    size_t envlen;
    double ts, uptime;
    int has_ts, has_uptime, level, local;
    const char *host;
    size_t hostlen, msg;
} Env;

static size_t after_tag(const char *s, size_t n, size_t pos, Env *e) {
    pos += tag_at(s, n, pos);
    size_t u = uptime_at(s, n, pos, &e->uptime);
    if (u) { e->has_uptime = 1; pos += u; }
    return pos;
}

static int after_host(const char *s, size_t n, size_t pos, Env *e) {
    size_t j = pos;
    while (j < n && s[j] != ' ') j++;
    if (j == pos || j >= n) return -1;
    e->host = s + pos;
    e->hostlen = j - pos;
    e->msg = after_tag(s, n, j + 1, e);
    return 0;
}

/* returns 0 ok, -1 bad envelope (a LOG line with it is an error) */
static int parse_envelope(const char *s, size_t n, int ref_year, int ref_month, Env *e) {
    memset(e, 0, sizeof *e);
    e->level = -1;
    size_t pos = 0, j;
    /* kmsg: digits,digits,digits,[^;]*; */
    {
        size_t k = 0;
        int fields = 0;
        size_t u0 = 0, u1 = 0;
        while (fields < 3) {
            size_t d0 = k;
            while (k < n && is_dig(s[k])) k++;
            if (k == d0 || k >= n || s[k] != ',') break;
            if (fields == 2) { u0 = d0; u1 = k; }
            k++;
            fields++;
        }
        if (fields == 3) {
            const char *semi = memchr(s + k, ';', n - k);
            if (semi) {
                int pri = 0;
                for (size_t q = 0; s[q] != ','; q++) pri = (pri * 10 + (s[q] - '0')) & 0xFFFF;
                /* level = int(pri) & 7: only the low digits matter modulo 8 when pri < 65536 */
                uint64_t usec;
                if (parse_dec(s + u0, u1 - u0, UINT64_MAX, &usec)) return -1;
                e->envelope = "kmsg"; e->envlen = sizeof "kmsg" - 1;
                e->level = pri & 7;
                e->uptime = (double)usec / 1e6;
                e->has_uptime = 1;
                e->msg = (size_t)(semi - s) + 1;
                return 0;
            }
        }
    }
    int has_pri = 0;
    if (n > 2 && s[0] == '<') {
        j = 1;
        int pri = 0;
        while (j < n && j < 4 && is_dig(s[j])) pri = pri * 10 + (s[j++] - '0');
        if (j > 1 && j < n && s[j] == '>') {
            has_pri = 1;
            e->level = pri & 7;
            pos = j + 1;
        }
    }
    if (has_pri && pos + 2 <= n && s[pos] == '1' && s[pos + 1] == ' ') {
        /* 1 TS HOST APP PROCID MSGID SD [MSG] */
        size_t f[5][2], k = pos + 2;
        int ok = 1;
        for (int i = 0; i < 5 && ok; i++) {
            size_t a = k;
            while (k < n && s[k] != ' ') k++;
            if (k == a || k >= n) ok = 0;
            f[i][0] = a;
            f[i][1] = k;
            k++;
        }
        if (ok && k < n) {
            size_t sd = k;
            if (s[k] == '-') k++;
            else {
                while (k < n && s[k] == '[') {
                    const char *close = memchr(s + k, ']', n - k);
                    if (!close) break;
                    k = (size_t)(close - s) + 1;
                }
            }
            if (k > sd && (s[sd] == '-' || s[k - 1] == ']')) {
                if (k < n && s[k] == ' ') k++;
                e->envelope = "rfc5424"; e->envlen = sizeof "rfc5424" - 1;
                size_t tl = f[0][1] - f[0][0];
                if (!(tl == 1 && s[f[0][0]] == '-')) {
                    int bad;
                    size_t used = iso_at(s, f[0][1], f[0][0], &e->ts, &e->local, &bad);
                    if (used != tl || bad) return -1;
                    e->has_ts = 1;
                }
                if (!(f[1][1] - f[1][0] == 1 && s[f[1][0]] == '-')) {
                    e->host = s + f[1][0];
                    e->hostlen = f[1][1] - f[1][0];
                }
                e->msg = after_tag(s, n, k, e);
                return 0;
            }
        }
    }
    {
        int bad;
        size_t used = iso_at(s, n, pos, &e->ts, &e->local, &bad);
        if (used && pos + used < n && s[pos + used] == ' ') {
            if (bad) return -1;
            e->envelope = "rfc3339"; e->envlen = sizeof "rfc3339" - 1;
            e->has_ts = 1;
            return after_host(s, n, pos + used + 1, e);
        }
    }
    {
        int mo = month_at(s + pos, n - pos), d1, h, mi, sec;
        if (mo && pos + 15 < n && s[pos + 3] == ' ' && (s[pos + 4] == ' ' || is_dig(s[pos + 4])) &&
            is_dig(s[pos + 5]) && s[pos + 6] == ' ' && !num_at(s, n, pos + 7, 2, &h) && s[pos + 9] == ':' &&
            !num_at(s, n, pos + 10, 2, &mi) && s[pos + 12] == ':' && !num_at(s, n, pos + 13, 2, &sec)) {
            double frac;
            size_t k = pos + 15;
            k += frac_at(s, n, k, &frac);
            if (k < n && s[k] == ' ') {
                d1 = (s[pos + 4] == ' ' ? 0 : (s[pos + 4] - '0') * 10) + (s[pos + 5] - '0');
                int year = ref_year - (mo > ref_month);
                if (clock_ts(year, mo, d1, h, mi, sec, frac, 0, &e->ts)) return -1;
                e->envelope = "syslog"; e->envlen = sizeof "syslog" - 1;
                e->has_ts = 1;
                e->local = 1;
                return after_host(s, n, k + 1, e);
            }
        }
    }
    if (pos + 27 <= n && s[pos] == '[') {
        int wd = 0, mo, d1, h, mi, sec, y;
        for (int i = 0; i < 7; i++) if (memcmp(s + pos + 1, WDAYS + 3 * i, 3) == 0) wd = 1;
        mo = month_at(s + pos + 5, n - pos - 5);
        if (wd && mo && s[pos + 4] == ' ' && s[pos + 8] == ' ' && (s[pos + 9] == ' ' || is_dig(s[pos + 9])) &&
            is_dig(s[pos + 10]) && s[pos + 11] == ' ' && !num_at(s, n, pos + 12, 2, &h) && s[pos + 14] == ':' &&
            !num_at(s, n, pos + 15, 2, &mi) && s[pos + 17] == ':' && !num_at(s, n, pos + 18, 2, &sec) &&
            s[pos + 20] == ' ' && !num_at(s, n, pos + 21, 4, &y) && s[pos + 25] == ']' && s[pos + 26] == ' ') {
            d1 = (s[pos + 9] == ' ' ? 0 : (s[pos + 9] - '0') * 10) + (s[pos + 10] - '0');
            if (clock_ts(y, mo, d1, h, mi, sec, 0.0, 0, &e->ts)) return -1;
            e->envelope = "dmesg-T"; e->envlen = sizeof "dmesg-T" - 1;
            e->has_ts = 1;
            e->local = 1;
            e->msg = pos + 27;
            return 0;
        }
    }
    {
        size_t u = uptime_at(s, n, pos, &e->uptime);
        if (u) {
            e->envelope = "dmesg"; e->envlen = sizeof "dmesg" - 1;
            e->has_uptime = 1;
            e->msg = pos + u;
            return 0;
        }
    }
    e->envelope = "bare"; e->envlen = sizeof "bare" - 1;
    e->msg = pos;
    return 0;
}

/* leftmost `IN=[^ ]* OUT=[^ ]*( |$)`; returns offset or -1 */
static long find_marker(const char *s, size_t n) {
    size_t from = 0;
    while (from + 3 <= n) {
        const char *p = memmem(s + from, n - from, "IN=", 3);
        if (!p) return -1;
        size_t j = (size_t)(p - s) + 3;
        while (j < n && s[j] != ' ') j++;
        if (j + 5 <= n && memcmp(s + j, " OUT=", 5) == 0) {
            j += 5;
            while (j < n && s[j] != ' ') j++;
            return (long)(p - s);
        }
        from = (size_t)(p - s) + 1;
    }
    return -1;
}

/* ---------------------------------------------------------------- parts and threads */

/* Column memory: its own anonymous mapping, so pages nobody writes stay the shared zero page
 * (a mask with no missing value costs nothing) -- calloc may hand out recycled heap memory and
 * clear it. Large blocks ask for huge pages: one fault per 2 MiB instead of per 4 KiB.
 * The mapping's length is kept in a header just before the block. */
#define BLOCK_HEAD 64

static void *column_alloc(size_t count, size_t width) {
    size_t len = BLOCK_HEAD + (count ? count : 1) * width, huge = (size_t)2 << 20;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    if (len >= 2 * huge) madvise(base, len, MADV_HUGEPAGE);
    *(size_t *)base = len;
    return base + BLOCK_HEAD;
}

static void column_free(void *p) {
    if (p) munmap((char *)p - BLOCK_HEAD, *(size_t *)((char *)p - BLOCK_HEAD));
}

typedef struct {
    uint64_t lineno;
    size_t offset, reason;   /* offset in the whole buffer; reason: index into Part.reasons */
} LineErr;

#define MAXPARTS 64

typedef struct {
    const char *s;
    size_t n, start;         /* bytes, their offset in the whole buffer */
    size_t newlines, base;   /* base: first row slot of this part in the shared buffers */
    int non_ascii;
    uint64_t first_lineno;
    int ref_year, ref_month;
    Out *o;
    St *st;
    size_t total, other;
    LineErr *errs;
    size_t nerr, errcap;
    char *reasons;
    size_t rlen, rcap;
    int oom;
} Part;

/* Lines in the part, and whether any byte is not ASCII (then the text must be checked as UTF-8
 * before Arrow gets it): one pass, vectorised, in every thread at once. */
__attribute__((optimize("O3")))
static void *count_part(void *arg) {
    Part *p = arg;
    const unsigned char *s = (const unsigned char *)p->s;
    size_t n = p->n, lines = 0;
    unsigned char any = 0;
    for (size_t i = 0; i < n;) {
        size_t end = i + 255 < n ? i + 255 : n;   /* byte counters: at most 255 per block */
        unsigned char nl = 0;
        for (; i < end; i++) {
            nl += s[i] == '\n';
            any |= s[i];
        }
        lines += nl;
    }
    p->newlines = lines;
    p->non_ascii = any >> 7;
    return NULL;
}

static int part_error(Part *p, uint64_t lineno, size_t offset, const char *reason) {
    size_t rl = strlen(reason) + 1;
    if (p->nerr == p->errcap) {
        size_t cap = p->errcap ? p->errcap * 2 : 64;
        LineErr *e = realloc(p->errs, cap * sizeof *e);
        if (!e) return -1;
        p->errs = e;
        p->errcap = cap;
    }
    if (p->rlen + rl > p->rcap) {
        size_t cap = p->rcap ? p->rcap * 2 : 4096;
        while (cap < p->rlen + rl) cap *= 2;
        char *r = realloc(p->reasons, cap);
        if (!r) return -1;
        p->reasons = r;
        p->rcap = cap;
    }
    memcpy(p->reasons + p->rlen, reason, rl);
    p->errs[p->nerr++] = (LineErr){lineno, p->start + offset, p->rlen};
    p->rlen += rl;
    return 0;
}

static void *parse_part(void *arg) {
    Part *p = arg;
    Out *o = p->o;
    St *st = p->st;
    const char *s = p->s;
    size_t n = p->n, pos = 0;
    uint64_t lineno = p->first_lineno;
    st->o = o;
    while (pos < n) {
        const char *line = s + pos;
        const char *nl = memchr(line, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - line) : n - pos;
        size_t next = pos + len + 1;
        if (len && line[len - 1] == '\r') len--;
        p->total++;
        Env e;
        int rc = parse_envelope(line, len, p->ref_year, p->ref_month, &e);
        const char *reason = NULL;
        if (rc) {
            if (find_marker(line, len) >= 0) reason = "bad timestamp in envelope";
            else { p->other++; goto next_line; }
        } else {
            const char *msg = line + e.msg;
            size_t ml = len - e.msg;
            long m = find_marker(msg, ml);
            if (m < 0) { p->other++; goto next_line; }
            if (e.envelope[0] == 'b' && memmem(msg, (size_t)m, "kernel: ", 8)) {
                reason = "unrecognised line envelope before 'kernel: '";
            } else if (parse_fields(st, msg + m, ml - (size_t)m)) {
                reason = st->err;
            } else {
                put_u(o, G.c_lineno, lineno);
                if (e.has_ts) put_f(o, G.c_ts, e.ts);
                if (e.has_ts) put_u(o, G.c_tslocal, (uint64_t)e.local);
                if (e.has_uptime) put_f(o, G.c_uptime, e.uptime);
                if (e.level >= 0) put_u(o, G.c_level, (uint64_t)e.level);
                if ((e.host && put_s(o, G.c_host, e.host, e.hostlen)) || put_s(o, G.c_envelope, e.envelope, e.envlen) ||
                    put_s(o, G.c_prefix, msg, (size_t)m)) {
                    p->oom = 1;
                    break;
                }
                commit(o);
            }
        }
        if (reason) {
            rollback(o);
            if (part_error(p, lineno, pos, reason)) { p->oom = 1; break; }
        }
    next_line:
        lineno++;
        pos = next;
    }
    for (int c = 0; c < G.ncols; c++) if (o->cols[c].any) fill_missing(&o->cols[c], G.types[c], o->n);
    return NULL;
}

/* Runs fn on every part, the last one in the calling thread. */
static void run_parts(Part *parts, int nparts, void *(*fn)(void *)) {
    pthread_t tid[MAXPARTS];
    int started[MAXPARTS] = {0};
    for (int k = 0; k < nparts - 1; k++) started[k] = pthread_create(&tid[k], NULL, fn, &parts[k]) == 0;
    for (int k = 0; k < nparts - 1; k++) if (!started[k]) fn(&parts[k]);
    fn(&parts[nparts - 1]);
    for (int k = 0; k < nparts - 1; k++) if (started[k]) pthread_join(tid[k], NULL);
}

/* ---------------------------------------------------------------- Python glue */

/* The column buffers are handed to Python as they are (no copy, no second set of page faults):
 * a Buffer owns one block and frees it when the last view of it goes. */
typedef struct {
    PyObject_HEAD
    void *ptr;
    Py_ssize_t len;
    int mapped;   /* from column_alloc, else malloc */
} BufferObject;

static void buffer_dealloc(BufferObject *b) {
    if (b->mapped) column_free(b->ptr);
    else free(b->ptr);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

static int buffer_get(BufferObject *b, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)b, b->ptr, b->len, 0, flags);
}

static PyBufferProcs BUFFER_PROCS = {(getbufferproc)buffer_get, NULL};

static PyTypeObject BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_iplogcore.Buffer",
    .tp_basicsize = sizeof(BufferObject),
    .tp_dealloc = (destructor)buffer_dealloc,
    .tp_as_buffer = &BUFFER_PROCS,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A block of column memory filled by parse()",
};

/* Takes ownership of *ptr (sets it to NULL), also on failure. */
static PyObject *adopt(void **ptr, size_t len, int mapped) {
    void *p = *ptr ? *ptr : malloc(1);
    if (!*ptr) mapped = 0;
    *ptr = NULL;
    if (!p) return PyErr_NoMemory();
    BufferObject *b = PyObject_New(BufferObject, &BufferType);
    if (!b) { if (mapped) column_free(p); else free(p); return NULL; }
    b->ptr = p;
    b->len = (Py_ssize_t)len;
    b->mapped = mapped;
    return (PyObject *)b;
}

typedef struct {
    Part parts[MAXPARTS];
    int nparts;
    char *vals[MAXCOLS];
    uint8_t *mask[MAXCOLS];
    int any[MAXCOLS];
} Job;

static void job_free(Job *j) {
    for (int c = 0; c < G.ncols; c++) {
        column_free(j->vals[c]);
        column_free(j->mask[c]);
    }
    for (int k = 0; k < j->nparts; k++) {
        Part *p = &j->parts[k];
        if (p->o)
            for (int c = 0; c < G.ncols; c++) {
                if (G.types[c] == T_STR) column_free(p->o->cols[c].off);
                else free(p->o->cols[c].off);
                column_free(p->o->cols[c].bits);
                free(p->o->cols[c].data);
                free(p->o->cols[c].slots);
            }
        free(p->o);
        free(p->st);
        free(p->errs);
        free(p->reasons);
    }
}

/* Shared number buffers for every row slot; each part's text columns in blocks of its own. */
static int job_alloc(Job *j) {
    size_t slots = 0;
    for (int k = 0; k < j->nparts; k++) {
        j->parts[k].base = slots;
        slots += j->parts[k].newlines + 1;
    }
    for (int c = 0; c < G.ncols; c++) {
        int t = G.types[c];
        if (t == T_STR) continue;
        if (!(j->vals[c] = column_alloc(slots, (size_t)WIDTH[t]))) return -1;
        if (t != T_F64 && t != T_CAT && !(j->mask[c] = column_alloc(slots, 1))) return -1;
    }
    for (int k = 0; k < j->nparts; k++) {
        Part *p = &j->parts[k];
        size_t cap = p->newlines + 1;
        if (!(p->o = calloc(1, sizeof(Out))) || !(p->st = malloc(sizeof(St)))) return -1;
        p->o->cap = cap;
        for (int c = 0; c < G.ncols; c++) {
            Column *col = &p->o->cols[c];
            if (G.types[c] == T_STR) {
                if (!(col->off = column_alloc(cap + 1, sizeof(int64_t))) || !(col->bits = column_alloc(cap / 8 + 1, 1)))
                    return -1;
            } else {
                col->vals = j->vals[c] + p->base * (size_t)WIDTH[G.types[c]];
                if (j->mask[c]) col->mask = j->mask[c] + p->base;
            }
        }
    }
    return 0;
}

/* Close the gaps between the parts' row ranges (lines that gave no row) and fill every
 * column some part used with missing values in the parts that did not. */
static size_t job_join(Job *j) {
    size_t rows = 0;
    for (int c = 0; c < G.ncols; c++)
        for (int k = 0; k < j->nparts; k++) j->any[c] |= j->parts[k].o->cols[c].any;
    for (int k = 0; k < j->nparts; k++) {
        Out *o = j->parts[k].o;
        for (int c = 0; c < G.ncols; c++) {
            int t = G.types[c];
            if (!j->any[c]) continue;
            if (!o->cols[c].any) fill_missing(&o->cols[c], t, o->n);
            if (t == T_STR || rows == j->parts[k].base) continue;
            size_t w = (size_t)WIDTH[t];
            memmove(j->vals[c] + rows * w, o->cols[c].vals, o->n * w);
            if (j->mask[c]) memmove(j->mask[c] + rows, o->cols[c].mask, o->n);
        }
        rows += o->n;
    }
    return rows;
}

/* (values, mask) for numbers and booleans, (values,) for floats, [(rows, offsets, data, bitmap)
 * per part] for text, None for a column no line filled. */
static PyObject *column_result(Job *j, int c, size_t rows) {
    int t = G.types[c];
    if (!j->any[c]) Py_RETURN_NONE;
    if (t == T_F64) return Py_BuildValue("(N)", adopt((void **)&j->vals[c], rows * 8, 1));
    if (t == T_CAT) {   /* (codes, [(part rows, number of values, offsets, data) per part]) */
        PyObject *codes = adopt((void **)&j->vals[c], rows * 4, 1), *parts = PyList_New(0);
        for (int k = 0; codes && parts && k < j->nparts; k++) {
            Column *col = &j->parts[k].o->cols[c];
            PyObject *off = adopt((void **)&col->off, col->ncat ? (col->ncat + 1) * sizeof(int64_t) : 0, 0);
            PyObject *data = adopt((void **)&col->data, col->dlen, 0);
            PyObject *item = (off && data) ? Py_BuildValue("(nnNN)", (Py_ssize_t)j->parts[k].o->n,
                                                           (Py_ssize_t)col->ncat, off, data) : NULL;
            if (!item) { Py_XDECREF(off); Py_XDECREF(data); Py_CLEAR(parts); break; }
            if (PyList_Append(parts, item)) Py_CLEAR(parts);
            Py_DECREF(item);
        }
        if (!codes || !parts) { Py_XDECREF(codes); Py_XDECREF(parts); return NULL; }
        return Py_BuildValue("(NN)", codes, parts);
    }
    if (t != T_STR) {
        PyObject *a = adopt((void **)&j->vals[c], rows * (size_t)WIDTH[t], 1);
        PyObject *m = adopt((void **)&j->mask[c], rows, 1);
        if (!a || !m) { Py_XDECREF(a); Py_XDECREF(m); return NULL; }
        return Py_BuildValue("(NN)", a, m);
    }
    PyObject *chunks = PyList_New(0);
    for (int k = 0; chunks && k < j->nparts; k++) {
        Out *o = j->parts[k].o;
        Column *col = &o->cols[c];
        if (!o->n) continue;
        PyObject *off = adopt((void **)&col->off, (o->n + 1) * sizeof(int64_t), 1);
        PyObject *data = adopt((void **)&col->data, col->dlen, 0);
        PyObject *bits = adopt((void **)&col->bits, (o->n + 7) / 8, 1);
        PyObject *item = (off && data && bits) ? Py_BuildValue("(nNNN)", (Py_ssize_t)o->n, off, data, bits) : NULL;
        if (!item) { Py_XDECREF(off); Py_XDECREF(data); Py_XDECREF(bits); Py_CLEAR(chunks); break; }
        if (PyList_Append(chunks, item)) Py_CLEAR(chunks);
        Py_DECREF(item);
    }
    return chunks;
}

static PyObject *job_errors(Job *j) {
    PyObject *errors = PyList_New(0);
    for (int k = 0; errors && k < j->nparts; k++) {
        Part *p = &j->parts[k];
        for (size_t i = 0; i < p->nerr; i++) {
            PyObject *item = Py_BuildValue("(Kns)", (unsigned long long)p->errs[i].lineno, (Py_ssize_t)p->errs[i].offset,
                                           p->reasons + p->errs[i].reason);
            if (!item || PyList_Append(errors, item)) Py_CLEAR(errors);
            Py_XDECREF(item);
            if (!errors) break;
        }
    }
    return errors;
}

static PyObject *py_parse(PyObject *self, PyObject *args) {
    Py_buffer buf;
    unsigned long long first_lineno;
    int ref_year, ref_month, nparts = 1;
    if (!G.configured) {
        PyErr_SetString(PyExc_RuntimeError, "_iplogcore.configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*Kii|i", &buf, &first_lineno, &ref_year, &ref_month, &nparts)) return NULL;
    Job *j = calloc(1, sizeof(Job));
    PyObject *result = NULL, *cols = NULL, *errors = NULL;
    if (!j) { PyErr_NoMemory(); goto done; }
    const char *s = buf.buf;
    size_t n = (size_t)buf.len, start = 0;
    if (nparts < 1) nparts = 1;
    if (nparts > MAXPARTS) nparts = MAXPARTS;
    for (int k = 0; k < nparts && start < n; k++) {   /* cut at line ends, about equal sizes */
        size_t end = k == nparts - 1 ? n : n / (size_t)nparts * (size_t)(k + 1);
        if (end < start) end = start;
        const char *nl = end < n ? memchr(s + end, '\n', n - end) : NULL;
        end = (end >= n || !nl) ? n : (size_t)(nl - s) + 1;
        j->parts[j->nparts++] = (Part){.s = s + start, .n = end - start, .start = start,
                                        .ref_year = ref_year, .ref_month = ref_month};
        start = end;
    }
    if (!j->nparts) j->parts[j->nparts++] = (Part){.s = s, .n = 0, .ref_year = ref_year, .ref_month = ref_month};
    int failed;
    size_t rows = 0, total = 0, other = 0;
    Py_BEGIN_ALLOW_THREADS
    run_parts(j->parts, j->nparts, count_part);
    uint64_t lineno = first_lineno;
    for (int k = 0; k < j->nparts; k++) {
        j->parts[k].first_lineno = lineno;
        lineno += j->parts[k].newlines;
    }
    failed = job_alloc(j);
    if (!failed) {
        run_parts(j->parts, j->nparts, parse_part);
        for (int k = 0; k < j->nparts; k++) failed |= j->parts[k].oom;
    }
    if (!failed) rows = job_join(j);
    Py_END_ALLOW_THREADS
    if (failed) { PyErr_NoMemory(); goto done; }
    for (int k = 0; k < j->nparts; k++) {
        total += j->parts[k].total;
        other += j->parts[k].other;
    }
    if (!(errors = job_errors(j)) || !(cols = PyList_New(G.ncols))) goto done;
    for (int c = 0; c < G.ncols; c++) {
        PyObject *r = column_result(j, c, rows);
        if (!r) { Py_CLEAR(cols); goto done; }
        PyList_SET_ITEM(cols, c, r);
    }
    int non_ascii = 0;
    for (int k = 0; k < j->nparts; k++) non_ascii |= j->parts[k].non_ascii;
    result = Py_BuildValue("(nOOnni)", (Py_ssize_t)rows, cols, errors, (Py_ssize_t)total, (Py_ssize_t)other,
                           non_ascii);
done:
    if (j) { job_free(j); free(j); }
    Py_XDECREF(cols);
    Py_XDECREF(errors);
    PyBuffer_Release(&buf);
    return result;
}

/* configure(types, contexts, special) -- see api._configure_core for the layout */
static PyObject *py_configure(PyObject *self, PyObject *args) {
    PyObject *types, *contexts, *special;
    if (!PyArg_ParseTuple(args, "OOO", &types, &contexts, &special)) return NULL;
    memset(&G, 0, sizeof G);
    G.ncols = (int)PyList_Size(types);
    if (G.ncols <= 0 || G.ncols > MAXCOLS) return PyErr_Format(PyExc_ValueError, "bad column count");
    for (int i = 0; i < G.ncols; i++) G.types[i] = (int)PyLong_AsLong(PyList_GET_ITEM(types, i));
    G.nctx = (int)PyList_Size(contexts);
    if (G.nctx > MAXCTX) return PyErr_Format(PyExc_ValueError, "too many contexts");
    for (int c = 0; c < G.nctx; c++) {
        PyObject *keys, *req;
        int ext_rank;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(contexts, c), "OOi", &keys, &req, &ext_rank)) return NULL;
        Ctx *ctx = &G.ctx[c];
        ctx->nkeys = (int)PyList_Size(keys);
        ctx->nreq = (int)PyList_Size(req);
        ctx->ext_rank = ext_rank;
        if (ctx->nkeys > MAXKEYS || ctx->nreq > MAXREQ) return PyErr_Format(PyExc_ValueError, "context too big");
        for (int k = 0; k < ctx->nkeys; k++) {
            const char *tok;
            Key *key = &ctx->keys[k];
            if (!PyArg_ParseTuple(PyList_GET_ITEM(keys, k), "siiiii", &tok, &key->prefix, &key->col, &key->icol,
                                  &key->conv, &key->arg))
                return NULL;
            key->len = (int)strlen(tok);
            if (key->len >= (int)sizeof key->tok) return PyErr_Format(PyExc_ValueError, "token too long");
            memcpy(key->tok, tok, key->len + 1);
        }
        for (int r = 0; r < ctx->nreq; r++) ctx->req[r] = (int)PyLong_AsLong(PyList_GET_ITEM(req, r));
    }
    PyObject *roles, *protos, *from;
    if (!PyArg_ParseTuple(special, "(iiiiii)(iiiiiiiiiiii)OOO", &G.hdr, &G.ip4, &G.ip6, &G.arp, &G.trailer, &G.other,
                          &G.c_lineno, &G.c_ts, &G.c_uptime, &G.c_host, &G.c_envelope, &G.c_level, &G.c_prefix,
                          &G.c_family, &G.c_tslocal, &G.c_saddr, &G.c_daddr, &G.c_dst, &roles, &protos, &from))
        return NULL;
    if (PyList_Size(roles) != NROLES) return PyErr_Format(PyExc_ValueError, "roles");
    for (int r = 0; r < NROLES; r++)
        if (!PyArg_ParseTuple(PyList_GET_ITEM(roles, r), "ii", &G.role[r][0], &G.role[r][1])) return NULL;
    G.nprotos = (int)PyList_Size(protos);
    for (int p = 0; p < G.nprotos && p < 16; p++) {
        const char *name;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(protos, p), "si", &name, &G.protos[p].ctx)) return NULL;
        G.protos[p].len = (int)strlen(name);
        snprintf(G.protos[p].name, sizeof G.protos[p].name, "%s", name);
    }
    for (Py_ssize_t i = 0; i < PyList_Size(from); i++) G.trailer_from[PyLong_AsLong(PyList_GET_ITEM(from, i))] = 1;
    if (PyErr_Occurred()) return NULL;
    G.configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef METHODS[] = {
    {"configure", py_configure, METH_VARARGS, "Load the grammar tables from fields.py."},
    {"parse", py_parse, METH_VARARGS,
     "parse(buffer, first_lineno, ref_year, ref_month, parts=1) -> (rows, columns, errors, lines, other_lines,\n"
     "non_ascii); the buffer is cut at line ends into `parts` parsed by as many threads"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_iplogcore", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__iplogcore(void) {
    if (PyType_Ready(&BufferType) < 0) return NULL;
    return PyModule_Create(&MODULE);
}
