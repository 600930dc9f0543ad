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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Conv and Col numbers: keep equal to fields.py */
enum { C_STR, C_UINT, C_HEX, C_HEX4, C_MAC, C_IPV4, C_IPV6, C_FLAG, C_TCPFLAG, C_SRC, C_PROTO,
       C_OPTHEX, C_INCOMPLETE, C_INNER, C_ARP, C_TRUNCATED, C_EXT };
enum { T_U8, T_U16, T_U32, T_U64, T_F64, T_BOOL, T_STR };

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
    int c_lineno, c_ts, c_uptime, c_host, c_envelope, c_level, c_prefix, c_family, c_tslocal;
} G;

static const int WIDTH[] = {1, 2, 4, 8, 8, 1, 4};
static const uint64_t MAXV[] = {0xFFu, 0xFFFFu, 0xFFFFFFFFu, UINT64_MAX, 0, 0, 0};

typedef struct {
    char *vals;
    uint8_t *valid;
    char *data;
    size_t dlen, dcap;
    uint32_t *ends;
    size_t mark;   /* row + 1 while set in the row being parsed: validity is never read back from
                    * valid[], whose fresh zero pages would then be copied on write (a TLB flush
                    * on every core per page) */
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
    size_t cap = c->dcap ? c->dcap * 2 : 4096;
    while (cap < c->dlen + extra) cap *= 2;
    char *p = realloc(c->data, cap);
    if (!p) return -1;
    c->data = p;
    c->dcap = cap;
    return 0;
}

static void touch(Out *o, int col, size_t prev) {
    o->touched[o->ntouched].col = col;
    o->touched[o->ntouched].prev = prev;
    if (o->ntouched < MAXCOLS * 2 - 1) o->ntouched++;
}

static void put_u(Out *o, int col, uint64_t v) {
    Column *c = &o->cols[col];
    size_t n = o->n;
    switch (G.types[col]) {
    case T_U8: case T_BOOL: ((uint8_t *)c->vals)[n] = (uint8_t)v; break;
    case T_U16: ((uint16_t *)c->vals)[n] = (uint16_t)v; break;
    case T_U32: ((uint32_t *)c->vals)[n] = (uint32_t)v; break;
    default: ((uint64_t *)c->vals)[n] = v; break;
    }
    if (c->mark != n + 1) touch(o, col, 0);
    c->mark = n + 1;
    c->valid[n] = 1;
}

static void put_f(Out *o, int col, double v) {
    Column *c = &o->cols[col];
    ((double *)c->vals)[o->n] = v;
    if (c->mark != o->n + 1) touch(o, col, 0);
    c->mark = o->n + 1;
    c->valid[o->n] = 1;
}

static int put_s(Out *o, int col, const char *s, size_t len) {
    Column *c = &o->cols[col];
    if (c->mark == o->n + 1) return 0;  /* grammar sets each text column once per row */
    if (grow_data(c, len)) return -1;
    touch(o, col, c->dlen);
    memcpy(c->data + c->dlen, s, len);
    c->dlen += len;
    c->ends[o->n] = (uint32_t)c->dlen;
    c->mark = o->n + 1;
    c->valid[o->n] = 1;
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

static void rollback(Out *o) {
    for (int i = 0; i < o->ntouched; i++) {
        Column *c = &o->cols[o->touched[i].col];
        c->valid[o->n] = 0;
        c->mark = 0;
        if (G.types[o->touched[i].col] == T_STR) c->dlen = o->touched[i].prev;
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

static int check_addr(const char *s, size_t len, int family) {
    char buf[64];
    unsigned char bin[16];
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
    if (k->prefix) return len >= (size_t)k->len && memcmp(t, k->tok, k->len) == 0;
    return len == (size_t)k->len && memcmp(t, k->tok, k->len) == 0;
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
        const char *sp = memchr(s + i, ' ', n - i);
        size_t j = sp ? (size_t)(sp - s) : n;
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
    for (int m = 0; m < 12; m++) if (memcmp(s, MONTHS + 3 * m, 3) == 0) return m + 1;
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

/* ---------------------------------------------------------------- Python glue */

static void out_free(Out *o) {
    for (int c = 0; c < G.ncols; c++) {
        free(o->cols[c].vals);
        free(o->cols[c].valid);
        free(o->cols[c].data);
        free(o->cols[c].ends);
    }
}

/* Zeroed column memory. Large blocks (fresh mmaps) ask for huge pages: one fault and one TLB
 * entry per 2 MiB instead of per 4 KiB as the columns fill. */
static void *column_alloc(size_t count, size_t width) {
    void *p = calloc(count, width);
    size_t len = count * width, huge = (size_t)2 << 20;
    if (p && len >= 2 * huge) {
        uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
        uintptr_t hi = ((uintptr_t)p + len) & ~(uintptr_t)(huge - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    }
    return p;
}

static int out_init(Out *o, size_t cap) {
    memset(o, 0, sizeof *o);
    o->cap = cap ? cap : 1;
    for (int c = 0; c < G.ncols; c++) {
        Column *col = &o->cols[c];
        int t = G.types[c];
        col->valid = column_alloc(o->cap, 1);
        if (t == T_STR) col->ends = column_alloc(o->cap, sizeof(uint32_t));
        else col->vals = column_alloc(o->cap, (size_t)WIDTH[t]);
        if (!col->valid || (t == T_STR ? !col->ends : !col->vals)) return -1;
    }
    return 0;
}

static int add_error(PyObject *errors, uint64_t lineno, size_t offset, const char *reason) {
    PyObject *item = Py_BuildValue("(Kns)", (unsigned long long)lineno, (Py_ssize_t)offset, reason);
    if (!item) return -1;
    int rc = PyList_Append(errors, item);
    Py_DECREF(item);
    return rc;
}

/* Results: the column buffers themselves are handed to Python (no copy, no second set of page
 * faults): a Buffer owns one malloc'ed block and frees it when the last view of it goes. */
typedef struct {
    PyObject_HEAD
    void *ptr;
    Py_ssize_t len;
} BufferObject;

static void buffer_dealloc(BufferObject *b) {
    free(b->ptr);
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
static PyObject *adopt(void **ptr, size_t len) {
    void *p = *ptr ? *ptr : malloc(1);
    *ptr = NULL;
    if (!p) return PyErr_NoMemory();
    BufferObject *b = PyObject_New(BufferObject, &BufferType);
    if (!b) { free(p); return NULL; }
    b->ptr = p;
    b->len = (Py_ssize_t)len;
    return (PyObject *)b;
}

/* Arrow large_string offsets from the row ends (a null row repeats the previous offset). */
static int64_t *string_offsets(Column *col, size_t n) {
    int64_t *off = malloc((n + 1) * sizeof(int64_t));
    if (!off) return NULL;
    off[0] = 0;
    for (size_t i = 0; i < n; i++) off[i + 1] = col->valid[i] ? (int64_t)col->ends[i] : off[i];
    return off;
}

static PyObject *column_result(Out *o, int c, int64_t **offsets) {
    Column *col = &o->cols[c];
    size_t n = o->n;
    if (!col->any) Py_RETURN_NONE;
    PyObject *a, *b, *v;
    if (G.types[c] != T_STR) {
        a = adopt((void **)&col->vals, n * WIDTH[G.types[c]]);
        v = adopt((void **)&col->valid, n);
        if (!a || !v) { Py_XDECREF(a); Py_XDECREF(v); return NULL; }
        return Py_BuildValue("(NN)", a, v);
    }
    a = adopt((void **)&offsets[c], (n + 1) * sizeof(int64_t));
    b = adopt((void **)&col->data, col->dlen);
    v = adopt((void **)&col->valid, n);
    if (!a || !b || !v) { Py_XDECREF(a); Py_XDECREF(b); Py_XDECREF(v); return NULL; }
    return Py_BuildValue("(NNN)", a, b, v);
}

static PyObject *py_parse(PyObject *self, PyObject *args) {
    Py_buffer buf;
    unsigned long long first_lineno;
    int ref_year, ref_month;
    if (!G.configured) {
        PyErr_SetString(PyExc_RuntimeError, "_iplogcore.configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*Kii", &buf, &first_lineno, &ref_year, &ref_month)) return NULL;
    const char *s = buf.buf;
    size_t n = (size_t)buf.len;
    size_t lines = 1;
    Py_BEGIN_ALLOW_THREADS   /* other parts are counting and parsing meanwhile */
    for (const char *p = s; (p = memchr(p, '\n', (size_t)(s + n - p))) != NULL; p++) lines++;
    Py_END_ALLOW_THREADS
    Out *o = malloc(sizeof(Out));
    St *st = malloc(sizeof(St));
    PyObject *errors = PyList_New(0);
    PyObject *result = NULL;
    if (!o || !st || !errors || out_init(o, lines)) {
        PyErr_NoMemory();
        goto done;
    }
    st->o = o;
    size_t pos = 0, other = 0, total = 0;
    uint64_t lineno = first_lineno;
    Py_BEGIN_ALLOW_THREADS
    while (pos < n) {
        const char *line = s + pos;
        const char *nl = memchr(line, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - line) : n - pos;
        size_t next = pos + len + 1;
        if (len && line[len - 1] == '\r') len--;
        total++;
        Env e;
        int rc = parse_envelope(line, len, ref_year, ref_month, &e);
        const char *reason = NULL;
        if (rc) {
            if (find_marker(line, len) >= 0) reason = "bad timestamp in envelope";
            else { other++; goto next_line; }
        } else {
            const char *msg = line + e.msg;
            size_t ml = len - e.msg;
            long m = find_marker(msg, ml);
            if (m < 0) { other++; goto next_line; }
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
                if (e.host) put_s(o, G.c_host, e.host, e.hostlen);
                put_s(o, G.c_envelope, e.envelope, e.envlen);
                put_s(o, G.c_prefix, msg, (size_t)m);
                commit(o);
            }
        }
        if (reason) {
            rollback(o);
            Py_BLOCK_THREADS
            rc = add_error(errors, lineno, pos, reason);
            Py_UNBLOCK_THREADS
            if (rc) break;
        }
    next_line:
        lineno++;
        pos = next;
    }
    Py_END_ALLOW_THREADS
    if (PyErr_Occurred()) goto done;
    int64_t **offsets = calloc((size_t)G.ncols, sizeof(int64_t *));
    if (!offsets) { PyErr_NoMemory(); goto done; }
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int c = 0; c < G.ncols; c++)
        if (G.types[c] == T_STR && o->cols[c].any && !(offsets[c] = string_offsets(&o->cols[c], o->n))) oom = 1;
    Py_END_ALLOW_THREADS
    PyObject *cols = oom ? PyErr_NoMemory() : PyList_New(G.ncols);
    for (int c = 0; cols && c < G.ncols; c++) {
        PyObject *r = column_result(o, c, offsets);
        if (!r) { Py_CLEAR(cols); break; }
        PyList_SET_ITEM(cols, c, r);
    }
    for (int c = 0; c < G.ncols; c++) free(offsets[c]);
    free(offsets);
    if (!cols) goto done;
    result = Py_BuildValue("(nOOnn)", (Py_ssize_t)o->n, cols, errors, (Py_ssize_t)total, (Py_ssize_t)other);
    Py_DECREF(cols);
done:
    if (o) { out_free(o); free(o); }
    free(st);
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
    if (!PyArg_ParseTuple(special, "(iiiiii)(iiiiiiiii)OOO", &G.hdr, &G.ip4, &G.ip6, &G.arp, &G.trailer, &G.other,
                          &G.c_lineno, &G.c_ts, &G.c_uptime, &G.c_host, &G.c_envelope, &G.c_level, &G.c_prefix,
                          &G.c_family, &G.c_tslocal, &roles, &protos, &from))
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
     "parse(buffer, first_lineno, ref_year, ref_month) -> (rows, columns, errors, lines, other_lines)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_iplogcore", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__iplogcore(void) {
    if (PyType_Ready(&BufferType) < 0) return NULL;
    return PyModule_Create(&MODULE);
}
