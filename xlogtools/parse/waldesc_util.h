/*
 * waldesc_util.h: _waldesc's output buffer, record reading and the formatting the
 * rmgrs share (parse/rmgr/_util.py).
 * Part of _waldesc.c (header-only static functions, included once there).
 */
#ifndef XLOGTOOLS_WALDESC_UTIL_H
#define XLOGTOOLS_WALDESC_UTIL_H

/* ---------------------------------------------------------------------------------------- */
/* output buffer                                                                            */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} Out;

static int out_grow(Out *o, size_t need) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap - o->len < need)
        cap *= 2;
    char *p = realloc(o->p, cap);
    if (p == NULL) {
        o->oom = 1;
        return -1;
    }
    o->p = p;
    o->cap = cap;
    return 0;
}

static inline int out_reserve(Out *o, size_t n) {
    if (o->cap - o->len >= n)
        return 0;
    return out_grow(o, n);
}

static inline void put(Out *o, const char *s, size_t n) {
    if (out_reserve(o, n))
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static inline void put_str(Out *o, const char *s) { put(o, s, strlen(s)); }

static inline void put_ch(Out *o, char c) {
    if (out_reserve(o, 1))
        return;
    o->p[o->len++] = c;
}

/* decimal digits of v into the end of buf[24]; returns the first digit */
static inline char *fmt_u64(char *end, uint64_t v) {
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static inline void put_u64(Out *o, uint64_t v) {
    char buf[24];
    char *s = fmt_u64(buf + sizeof buf, v);
    put(o, s, (size_t)(buf + sizeof buf - s));
}

static inline void put_i64(Out *o, int64_t v) {
    if (v < 0) {
        put_ch(o, '-');
        put_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* %<width>d of a non-negative number: right-aligned */
static inline void put_u64_w(Out *o, uint64_t v, int width) {
    char buf[24];
    char *s = fmt_u64(buf + sizeof buf, v);
    int n = (int)(buf + sizeof buf - s);
    if (out_reserve(o, (size_t)(n > width ? n : width)))
        return;
    while (n < width) {
        o->p[o->len++] = ' ';
        width--;
    }
    memcpy(o->p + o->len, s, (size_t)n);
    o->len += (size_t)n;
}

/* %0<digits>X */
static inline void put_hex(Out *o, uint64_t v, int digits) {
    static const char hex[] = "0123456789ABCDEF";
    char buf[20];
    char *end = buf + sizeof buf, *s = end;
    do {
        *--s = hex[v & 15];
        v >>= 4;
        digits--;
    } while (v || digits > 0);
    put(o, s, (size_t)(end - s));
}

/* lsn() of the desc functions: "%X/%X" */
static inline void put_lsn(Out *o, uint64_t v) {
    put_hex(o, v >> 32, 1);
    put_ch(o, '/');
    put_hex(o, v & 0xFFFFFFFFu, 1);
}

/* pg_waldump's record line: "%X/%08X" */
static inline void put_lsn08(Out *o, uint64_t v) {
    put_hex(o, v >> 32, 1);
    put_ch(o, '/');
    put_hex(o, v & 0xFFFFFFFFu, 8);
}

static inline void put_tf(Out *o, int flag) { put_ch(o, flag ? 'T' : 'F'); }

/* ---------------------------------------------------------------------------------------- */
/* reading a record                                                                         */

#define FALLBACK 1

typedef struct {
    const uint8_t *d;       /* the record */
    const WalRec *r;
    const uint8_t *m;       /* main data */
    uint32_t mlen;
    int major;
    struct TsCache *tc;     /* the batch's timestamp texts */
} Ctx;

static inline uint8_t rd_u8(const uint8_t *p, uint64_t off) { return p[off]; }
static inline uint16_t rd_u16(const uint8_t *p, uint64_t off) { return walrec_u16(p + off); }
static inline uint32_t rd_u32(const uint8_t *p, uint64_t off) { return walrec_u32(p + off); }
static inline int32_t rd_i32(const uint8_t *p, uint64_t off) { return (int32_t)walrec_u32(p + off); }
static inline uint64_t rd_u64(const uint8_t *p, uint64_t off) { return walrec_u64(p + off); }
static inline int64_t rd_i64(const uint8_t *p, uint64_t off) { return (int64_t)walrec_u64(p + off); }

/* the main data must hold n bytes: a shorter one reads as zeros in Python (its text) */
#define NEED(n) do { if ((uint64_t)(n) > c->mlen) return FALLBACK; } while (0)
#define M16(off) rd_u16(c->m, off)
#define M32(off) rd_u32(c->m, off)
#define MI32(off) rd_i32(c->m, off)
#define M8(off) rd_u8(c->m, off)

/* rec.block(id) */
static const WalBlock *find_block(const WalRec *r, int id) {
    for (int i = 0; i < r->nblocks; i++)
        if (r->blocks[i].id == id)
            return &r->blocks[i];
    return NULL;
}

/* has_block_data(rec, 0) and block_data(rec, 0) */
static int block0_data(const Ctx *c, const uint8_t **p, uint32_t *len) {
    const WalBlock *b = find_block(c->r, 0);
    if (b == NULL || !(b->fork_flags & WALREC_HAS_DATA)) {
        *p = NULL;
        *len = 0;
        return 0;
    }
    *p = c->d + b->data_off;
    *len = b->data_len;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* shared formatting (_util.py)                                                             */

static const char *const FORK_NAMES[4] = {"main", "fsm", "vm", "init"};

/* TABLESPACE_VERSION_DIRECTORY's CATALOG_VERSION_NO of each major (_util.CATALOG_VERSION) */
static uint32_t catalog_version(int major) {
    switch (major) {
    case 13: return 202007201;
    case 14: return 202107181;
    case 15: return 202209061;
    case 16: return 202307071;
    case 17: return 202406281;
    case 18: return 202506291;
    default: return 0;
    }
}

/* relpathperm() */
static void put_relpath(Out *o, uint32_t spc, uint32_t db, uint32_t rel, int32_t fork, int major) {
    if (spc == 1664) {
        PUTS(o, "global/");
    } else if (spc == 1663) {
        PUTS(o, "base/");
        put_u64(o, db);
        put_ch(o, '/');
    } else {
        PUTS(o, "pg_tblspc/");
        put_u64(o, spc);
        PUTS(o, "/PG_");
        put_u64(o, (uint64_t)major);
        put_ch(o, '_');
        put_u64(o, catalog_version(major));
        put_ch(o, '/');
        put_u64(o, db);
        put_ch(o, '/');
    }
    put_u64(o, rel);
    if (fork > 0 && fork < 4) {
        put_ch(o, '_');
        put_str(o, FORK_NAMES[fork]);
    }
}

/* offsets_desc()/array_desc() of uint16 values: " [a, b]" */
static void put_u16_array(Out *o, const uint8_t *p, uint64_t off, uint32_t n) {
    PUTS(o, " [");
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            PUTS(o, ", ");
        put_u64(o, rd_u16(p, off + 2 * (uint64_t)i));
    }
    put_ch(o, ']');
}

/* standby_desc_invalidations(): the caller has checked the messages lie in the data */
static void put_invalidations(Out *o, const uint8_t *p, uint64_t off, int32_t nmsgs,
                              uint32_t db, uint32_t ts, int relcache_init, int major) {
    if (nmsgs <= 0)
        return;
    if (relcache_init) {
        PUTS(o, "; relcache init file inval dbid ");
        put_u64(o, db);
        PUTS(o, " tsid ");
        put_u64(o, ts);
    }
    PUTS(o, "; inval msgs:");
    for (int32_t i = 0; i < nmsgs; i++) {
        uint64_t m = off + 16 * (uint64_t)i;
        int8_t id = (int8_t)p[m];
        if (id >= 0) {
            PUTS(o, " catcache ");
            put_u64(o, (uint64_t)id);
        } else if (id == -1) {
            PUTS(o, " catalog ");
            put_u64(o, rd_u32(p, m + 8));
        } else if (id == -2) {
            PUTS(o, " relcache ");
            put_u64(o, rd_u32(p, m + 8));
        } else if (id == -3) {
            PUTS(o, " smgr");
        } else if (id == -4) {
            PUTS(o, " relmap db ");
            put_u64(o, rd_u32(p, m + 4));
        } else if (id == -5) {
            PUTS(o, " snapshot ");
            put_u64(o, rd_u32(p, m + 8));
        } else if (id == -6 && major >= 18) {
            PUTS(o, " relsync ");
            put_u64(o, rd_u32(p, m + 8));
        } else {
            PUTS(o, " unrecognized id ");
            put_i64(o, id);
        }
    }
}

/* nmsgs invalidation messages at off of the main data: in it, or the record falls back */
#define NEED_INVALS(off, nmsgs) \
    do { if ((nmsgs) > 0) NEED((uint64_t)(off) + 16 * (uint64_t)(nmsgs)); } while (0)

/* timestamptz_to_str(): local time of the process with its '%Z' zone, as Python's
   time.localtime/strftime give it (both go through the C library's localtime_r).  The commits
   of a stretch of WAL share their second: the text of the last second is kept (per batch). */
typedef struct TsCache {
    int valid;
    int64_t secs;
    char stamp[64];
    size_t stamp_len;
    char zone[64];
    size_t zone_len;
} TsCache;

static int put_timestamptz(Out *o, TsCache *tc, int64_t ts) {
    if (ts < 0)
        return FALLBACK;  /* a negative fraction: left to Python's formatting */
    int64_t secs = ts / 1000000 + 946684800;
    int64_t frac = ts % 1000000;
    if (!tc->valid || tc->secs != secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        if (localtime_r(&t, &tm) == NULL)
            return FALLBACK;
        if (tm.tm_year + 1900 < 1000 || tm.tm_year + 1900 > 9999)
            return FALLBACK;
        tc->stamp_len = strftime(tc->stamp, sizeof tc->stamp, "%Y-%m-%d %H:%M:%S", &tm);
        tc->zone_len = strftime(tc->zone, sizeof tc->zone, "%Z", &tm);
        if (tc->stamp_len == 0)
            return FALLBACK;
        for (size_t i = 0; i < tc->zone_len; i++)
            if ((unsigned char)tc->zone[i] >= 0x80)
                return FALLBACK;
        tc->secs = secs;
        tc->valid = 1;
    }
    put(o, tc->stamp, tc->stamp_len);
    char f[8];
    f[0] = '.';
    for (int i = 6; i >= 1; i--) {
        f[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    f[7] = ' ';
    put(o, f, 8);
    put(o, tc->zone, tc->zone_len);
    return 0;
}

/* a string of the record copied as it is: plain ASCII only (Python decodes other bytes with
   surrogateescape, which is its business) */
static int put_ascii(Out *o, const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80)
            return FALLBACK;
    put(o, (const char *)s, n);
    return 0;
}

/* Buf.cstring(off): up to the NUL or the end of the main data */
static int put_cstring(Out *o, const Ctx *c, uint32_t off, uint32_t *len) {
    if (off >= c->mlen) {
        *len = 0;
        return 0;
    }
    const uint8_t *s = c->m + off;
    const uint8_t *z = memchr(s, 0, c->mlen - off);
    size_t n = z ? (size_t)(z - s) : c->mlen - off;
    *len = (uint32_t)n;
    return put_ascii(o, s, n);
}

#endif
