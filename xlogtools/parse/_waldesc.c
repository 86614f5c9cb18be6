/*
 * _waldesc: pg_waldump's record type names, descriptions and output lines, in C, for batches
 * of records (issue 11).
 *
 * The C twin of the parse/rmgr modules (identify, describe) and export/waldump.py (format_records):
 * the same texts, field for field, for every resource manager (the hot ones first: Heap,
 * Heap2, Btree, Transaction, XLOG, Standby, ...; custom rmgrs).  Any record whose payload does
 * not add up (a struct shorter than what is read, a count running past the data, a negative
 * count, a string that is not plain ASCII) is left to the Python describer: the record is marked
 * "fallback" and its slot stays empty.  So this code never reads past a record, and the Python
 * code keeps the one definition of what an inconsistent record prints.
 *
 * Records come as an arena: each record's assembled bytes (header included, xl_tot_len bytes)
 * at rec_offsets[i] (little-endian uint64).  The loops run without the GIL.
 *
 *   describe_batch(arena, rec_offsets, n, major, blcksz) -> (offsets, data, fallback)
 *   identify_batch(arena, rec_offsets, n, major)         -> (offsets, data, fallback)
 *   waldump_lines(arena, rec_offsets, lsns, n, major, blcksz, bkp_details,
 *                 desc_offsets, desc_data)                -> bytes
 *   splice(desc_offsets, desc_data, n, indexes, texts)   -> (offsets, data)
 *
 * offsets: n + 1 int32; data: UTF-8; fallback: n uint8 (1 = not done here).  The file is
 * longer than our usual module: it keeps the rmgrs' C next to each other, as their Python
 * modules are next to each other, so the shared put_* helpers need no header.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "walrec.h"

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

/* ---------------------------------------------------------------------------------------- */
/* Heap (heap.py)                                                                           */

static const char *const INFOBIT_NAMES[5] = {"IS_MULTI", "LOCK_ONLY", "EXCL_LOCK", "KEYSHR_LOCK",
                                             "KEYS_UPDATED"};

/* out_infobits() of 13-15: each set flag followed by a space */
static void put_out_infobits(Out *o, uint8_t bits) {
    for (int i = 0; i < 5; i++)
        if (bits & (1 << i)) {
            put_str(o, INFOBIT_NAMES[i]);
            put_ch(o, ' ');
        }
}

/* infobits_desc() of 16+ without its key: "[A, B]" */
static void put_infobits_list(Out *o, uint8_t bits) {
    int first = 1;
    put_ch(o, '[');
    for (int i = 0; i < 5; i++)
        if (bits & (1 << i)) {
            if (!first)
                PUTS(o, ", ");
            put_str(o, INFOBIT_NAMES[i]);
            first = 0;
        }
    put_ch(o, ']');
}

static void put_flags02(Out *o, uint8_t v) {
    PUTS(o, "0x");
    put_hex(o, v, 2);
}

static int desc_heap(Out *o, const Ctx *c) {
    uint8_t op = c->r->info & 0x70;
    if (c->major < 16) {
        switch (op) {
        case 0x00:  /* INSERT: offnum, flags */
            NEED(3);
            PUTS(o, "off "); put_u64(o, M16(0));
            PUTS(o, " flags "); put_flags02(o, M8(2));
            return 0;
        case 0x10:  /* DELETE: xmax, offnum, infobits_set, flags */
            NEED(8);
            PUTS(o, "off "); put_u64(o, M16(4));
            PUTS(o, " flags "); put_flags02(o, M8(7));
            put_ch(o, ' ');
            put_out_infobits(o, M8(6));
            return 0;
        case 0x20:
        case 0x40:  /* UPDATE, HOT_UPDATE */
            NEED(14);
            PUTS(o, "off "); put_u64(o, M16(4));
            PUTS(o, " xmax "); put_u64(o, M32(0));
            PUTS(o, " flags "); put_flags02(o, M8(7));
            put_ch(o, ' ');
            put_out_infobits(o, M8(6));
            PUTS(o, "; new off "); put_u64(o, M16(12));
            PUTS(o, " xmax "); put_u64(o, M32(8));
            return 0;
        case 0x30: {  /* TRUNCATE: dbId, nrelids, flags, relids[] */
            NEED(12);
            uint32_t n = M32(4);
            uint8_t flags = M8(8);
            NEED(12 + 4 * (uint64_t)n);
            if (flags & 1) PUTS(o, "cascade ");
            if (flags & 2) PUTS(o, "restart_seqs ");
            PUTS(o, "nrelids "); put_u64(o, n);
            PUTS(o, " relids");
            for (uint32_t i = 0; i < n; i++) {
                put_ch(o, ' ');
                put_u64(o, M32(12 + 4 * (uint64_t)i));
            }
            return 0;
        }
        case 0x50:  /* CONFIRM */
        case 0x70:  /* INPLACE */
            NEED(2);
            PUTS(o, "off "); put_u64(o, M16(0));
            return 0;
        case 0x60:  /* LOCK: locking_xid, offnum, infobits_set, flags */
            NEED(8);
            PUTS(o, "off "); put_u64(o, M16(4));
            PUTS(o, ": xid "); put_u64(o, M32(0));
            PUTS(o, ": flags "); put_flags02(o, M8(7));
            put_ch(o, ' ');
            put_out_infobits(o, M8(6));
            return 0;
        }
        return 0;
    }
    switch (op) {
    case 0x00:
        NEED(3);
        PUTS(o, "off: "); put_u64(o, M16(0));
        PUTS(o, ", flags: "); put_flags02(o, M8(2));
        return 0;
    case 0x10:
    case 0x60:  /* DELETE, LOCK */
        NEED(8);
        PUTS(o, "xmax: "); put_u64(o, M32(0));
        PUTS(o, ", off: "); put_u64(o, M16(4));
        PUTS(o, ", infobits: "); put_infobits_list(o, M8(6));
        PUTS(o, ", flags: "); put_flags02(o, M8(7));
        return 0;
    case 0x20:
    case 0x40:
        NEED(14);
        PUTS(o, "old_xmax: "); put_u64(o, M32(0));
        PUTS(o, ", old_off: "); put_u64(o, M16(4));
        PUTS(o, ", old_infobits: "); put_infobits_list(o, M8(6));
        PUTS(o, ", flags: "); put_flags02(o, M8(7));
        PUTS(o, ", new_xmax: "); put_u64(o, M32(8));
        PUTS(o, ", new_off: "); put_u64(o, M16(12));
        return 0;
    case 0x30: {
        NEED(12);
        uint32_t n = M32(4);
        uint8_t flags = M8(8);
        NEED(12 + 4 * (uint64_t)n);
        PUTS(o, "flags: [");
        if (flags & 1) PUTS(o, "CASCADE");
        if ((flags & 3) == 3) PUTS(o, ", ");
        if (flags & 2) PUTS(o, "RESTART_SEQS");
        PUTS(o, "], nrelids: "); put_u64(o, n);
        PUTS(o, ", relids: [");
        for (uint32_t i = 0; i < n; i++) {
            if (i) PUTS(o, ", ");
            put_u64(o, M32(12 + 4 * (uint64_t)i));
        }
        put_ch(o, ']');
        return 0;
    }
    case 0x50:
        NEED(2);
        PUTS(o, "off: "); put_u64(o, M16(0));
        return 0;
    case 0x70:  /* INPLACE (18: offnum, dbId, tsId, relcacheInitFileInval, nmsgs, msgs) */
        NEED(2);
        if (c->major >= 18) {
            NEED(20);
            int32_t nmsgs = MI32(16);
            NEED_INVALS(20, nmsgs);
            PUTS(o, "off: "); put_u64(o, M16(0));
            put_invalidations(o, c->m, 20, nmsgs, M32(4), M32(8), M8(12) != 0, c->major);
            return 0;
        }
        PUTS(o, "off: "); put_u64(o, M16(0));
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Heap2 (heap2.py)                                                                         */

/* _freeze_plans(): " [{ xmax: .., offsets: [..] }, ...]" of plans at `plans` (12 bytes:
   xmax, infomask2, infomask, frzflags, ntuples) and their offsets at `offs` (checked) */
static void put_freeze_plans(Out *o, const uint8_t *b, uint64_t plans, uint32_t nplans,
                             uint64_t offs) {
    PUTS(o, " [");
    for (uint32_t i = 0; i < nplans; i++) {
        uint64_t p = plans + 12 * (uint64_t)i;
        uint16_t ntuples = rd_u16(b, p + 10);
        if (i) PUTS(o, ", ");
        PUTS(o, "{ xmax: "); put_u64(o, rd_u32(b, p));
        PUTS(o, ", infomask: "); put_u64(o, rd_u16(b, p + 6));
        PUTS(o, ", infomask2: "); put_u64(o, rd_u16(b, p + 4));
        PUTS(o, ", ntuples: "); put_u64(o, ntuples);
        PUTS(o, ", offsets:");
        put_u16_array(o, b, offs, ntuples);
        PUTS(o, " }");
        offs += 2 * (uint64_t)ntuples;
    }
    put_ch(o, ']');
}

/* the sum of the plans' ntuples */
static uint64_t plans_ntuples(const uint8_t *b, uint64_t plans, uint32_t nplans) {
    uint64_t n = 0;
    for (uint32_t i = 0; i < nplans; i++)
        n += rd_u16(b, plans + 12 * (uint64_t)i + 10);
    return n;
}

static void put_redirected(Out *o, const uint8_t *b, uint64_t off, uint32_t npairs) {
    PUTS(o, " [");
    for (uint32_t i = 0; i < npairs; i++) {
        if (i) PUTS(o, ", ");
        put_u64(o, rd_u16(b, off + 4 * (uint64_t)i));
        PUTS(o, "->");
        put_u64(o, rd_u16(b, off + 4 * (uint64_t)i + 2));
    }
    put_ch(o, ']');
}

/* _prune_17(): xl_heap_prune (reason, flags, [conflict horizon]) and the block's arrays */
static int desc_prune_17(Out *o, const Ctx *c) {
    NEED(2);
    uint8_t flags = M8(1);
    if (flags & (1 << 3))
        NEED(6);
    const uint8_t *b;
    uint32_t bl;
    int has = block0_data(c, &b, &bl);
    uint32_t nplans = 0, nred = 0, ndead = 0, nunused = 0;
    uint64_t plans = 0, red = 0, dead = 0, unused = 0, frz = 0, pos = 0;
    if (has) {
#define BNEED(n) do { if ((uint64_t)(n) > bl) return FALLBACK; } while (0)
        if (flags & (1 << 4)) {
            BNEED(pos + 2);
            nplans = rd_u16(b, pos);
            plans = pos + 4;
            pos += 4 + 12 * (uint64_t)nplans;
            BNEED(pos);
        }
        if (flags & (1 << 5)) {
            BNEED(pos + 2);
            nred = rd_u16(b, pos);
            red = pos + 2;
            pos += 2 + 4 * (uint64_t)nred;
            BNEED(pos);
        }
        if (flags & (1 << 6)) {
            BNEED(pos + 2);
            ndead = rd_u16(b, pos);
            dead = pos + 2;
            pos += 2 + 2 * (uint64_t)ndead;
            BNEED(pos);
        }
        if (flags & (1 << 7)) {
            BNEED(pos + 2);
            nunused = rd_u16(b, pos);
            unused = pos + 2;
            pos += 2 + 2 * (uint64_t)nunused;
            BNEED(pos);
        }
        frz = pos;
        BNEED(frz + 2 * plans_ntuples(b, plans, nplans));
#undef BNEED
    }
    if (flags & (1 << 3)) {
        PUTS(o, "snapshotConflictHorizon: ");
        put_u64(o, M32(2));
    }
    PUTS(o, ", isCatalogRel: ");
    put_tf(o, flags & (1 << 1));
    if (has) {
        PUTS(o, ", nplans: "); put_u64(o, nplans);
        PUTS(o, ", nredirected: "); put_u64(o, nred);
        PUTS(o, ", ndead: "); put_u64(o, ndead);
        PUTS(o, ", nunused: "); put_u64(o, nunused);
        if (nplans) {
            PUTS(o, ", plans:");
            put_freeze_plans(o, b, plans, nplans, frz);
        }
        if (nred) {
            PUTS(o, ", redirected:");
            put_redirected(o, b, red, nred);
        }
        if (ndead) {
            PUTS(o, ", dead:");
            put_u16_array(o, b, dead, ndead);
        }
        if (nunused) {
            PUTS(o, ", unused:");
            put_u16_array(o, b, unused, nunused);
        }
    }
    return 0;
}

static void put_new_cid_rel_tid(Out *o, const Ctx *c, const char *sep_tid) {
    /* xl_heap_new_cid: top_xid 0, cmin 4, cmax 8, combocid 12, locator 16, tid 28 */
    put_u64(o, M32(16)); put_ch(o, '/');
    put_u64(o, M32(20)); put_ch(o, '/');
    put_u64(o, M32(24));
    put_str(o, sep_tid);
    put_u64(o, ((uint32_t)M16(28) << 16) | M16(30));
    put_ch(o, '/');
    put_u64(o, M16(32));
    if (c->major >= 16) PUTS(o, ", cmin: "); else PUTS(o, "; cmin: ");
    put_u64(o, M32(4));
    PUTS(o, ", cmax: "); put_u64(o, M32(8));
    PUTS(o, ", combo: "); put_u64(o, M32(12));
}

static int desc_heap2(Out *o, const Ctx *c) {
    uint8_t op = c->r->info & 0x70;
    int major = c->major;
    if (major >= 16) {
        if (major >= 17 && op >= 0x10 && op <= 0x30)
            return desc_prune_17(o, c);
        if (major == 16 && op == 0x10) {  /* PRUNE: snapshotConflictHorizon, nredirected, ndead */
            NEED(8);
            uint32_t nred = M16(4), ndead = M16(6);
            const uint8_t *b;
            uint32_t bl;
            int has = block0_data(c, &b, &bl);
            int64_t nunused = 0;
            if (has) {
                nunused = (int64_t)(bl / 2) - 2 * (int64_t)nred - ndead;
                if (nunused < 0)
                    return FALLBACK;
            }
            PUTS(o, "snapshotConflictHorizon: "); put_u64(o, M32(0));
            PUTS(o, ", nredirected: "); put_u64(o, nred);
            PUTS(o, ", ndead: "); put_u64(o, ndead);
            if (has) {
                PUTS(o, ", nunused: "); put_u64(o, (uint64_t)nunused);
                PUTS(o, ", redirected:");
                put_redirected(o, b, 0, nred);
                PUTS(o, ", dead:");
                put_u16_array(o, b, 4 * (uint64_t)nred, ndead);
                PUTS(o, ", unused:");
                put_u16_array(o, b, 4 * (uint64_t)nred + 2 * (uint64_t)ndead, (uint32_t)nunused);
            }
            return 0;
        }
        if (major == 16 && op == 0x20) {  /* VACUUM: nunused */
            NEED(2);
            uint32_t n = M16(0);
            const uint8_t *b;
            uint32_t bl;
            int has = block0_data(c, &b, &bl);
            if (has && 2 * (uint64_t)n > bl)
                return FALLBACK;
            PUTS(o, "nunused: "); put_u64(o, n);
            if (has) {
                PUTS(o, ", unused:");
                put_u16_array(o, b, 0, n);
            }
            return 0;
        }
        if (major == 16 && op == 0x30) {  /* FREEZE_PAGE: snapshotConflictHorizon, nplans */
            NEED(6);
            uint32_t nplans = M16(4);
            const uint8_t *b;
            uint32_t bl;
            int has = block0_data(c, &b, &bl);
            if (has) {
                if (12 * (uint64_t)nplans > bl)
                    return FALLBACK;
                if (12 * (uint64_t)nplans + 2 * plans_ntuples(b, 0, nplans) > bl)
                    return FALLBACK;
            }
            PUTS(o, "snapshotConflictHorizon: "); put_u64(o, M32(0));
            PUTS(o, ", nplans: "); put_u64(o, nplans);
            if (has) {
                PUTS(o, ", plans:");
                put_freeze_plans(o, b, 0, nplans, 12 * (uint64_t)nplans);
            }
            return 0;
        }
        switch (op) {
        case 0x40:  /* VISIBLE */
            NEED(5);
            PUTS(o, "snapshotConflictHorizon: "); put_u64(o, M32(0));
            PUTS(o, ", flags: "); put_flags02(o, M8(4));
            return 0;
        case 0x50: {  /* MULTI_INSERT: flags 0, ntuples 2, offsets 4 */
            NEED(4);
            uint32_t n = M16(2);
            const uint8_t *b;
            uint32_t bl;
            int offs = block0_data(c, &b, &bl) && !(c->r->info & 0x80);
            if (offs)
                NEED(4 + 2 * (uint64_t)n);
            PUTS(o, "ntuples: "); put_u64(o, n);
            PUTS(o, ", flags: "); put_flags02(o, M8(0));
            if (offs) {
                PUTS(o, ", offsets:");
                put_u16_array(o, c->m, 4, n);
            }
            return 0;
        }
        case 0x60:  /* LOCK_UPDATED */
            NEED(8);
            PUTS(o, "xmax: "); put_u64(o, M32(0));
            PUTS(o, ", off: "); put_u64(o, M16(4));
            PUTS(o, ", infobits: "); put_infobits_list(o, M8(6));
            PUTS(o, ", flags: "); put_flags02(o, M8(7));
            return 0;
        case 0x70:  /* NEW_CID */
            NEED(34);
            PUTS(o, "rel: ");
            put_new_cid_rel_tid(o, c, ", tid: ");
            return 0;
        }
        return 0;
    }
    if (major <= 13) {
        switch (op) {
        case 0x10:  /* CLEAN: latestRemovedXid */
            NEED(4);
            PUTS(o, "remxid "); put_u64(o, M32(0));
            return 0;
        case 0x20:  /* FREEZE_PAGE: cutoff_xid, ntuples */
            NEED(6);
            PUTS(o, "cutoff xid "); put_u64(o, M32(0));
            PUTS(o, " ntuples "); put_u64(o, M16(4));
            return 0;
        case 0x30:  /* CLEANUP_INFO: node, latestRemovedXid */
            NEED(16);
            PUTS(o, "remxid "); put_u64(o, M32(12));
            return 0;
        }
    } else {
        switch (op) {
        case 0x10:  /* PRUNE */
            NEED(8);
            PUTS(o, "latestRemovedXid "); put_u64(o, M32(0));
            PUTS(o, " nredirected "); put_u64(o, M16(4));
            PUTS(o, " ndead "); put_u64(o, M16(6));
            return 0;
        case 0x20:  /* VACUUM */
            NEED(2);
            PUTS(o, "nunused "); put_u64(o, M16(0));
            return 0;
        case 0x30:  /* FREEZE_PAGE */
            NEED(6);
            PUTS(o, "cutoff xid "); put_u64(o, M32(0));
            PUTS(o, " ntuples "); put_u64(o, M16(4));
            return 0;
        }
    }
    switch (op) {
    case 0x40:
        NEED(5);
        PUTS(o, "cutoff xid "); put_u64(o, M32(0));
        PUTS(o, " flags "); put_flags02(o, M8(4));
        return 0;
    case 0x50:
        NEED(4);
        put_u64(o, M16(2));
        PUTS(o, " tuples flags "); put_flags02(o, M8(0));
        return 0;
    case 0x60:
        NEED(8);
        PUTS(o, "off "); put_u64(o, M16(4));
        PUTS(o, ": xmax "); put_u64(o, M32(0));
        PUTS(o, ": flags "); put_flags02(o, M8(7));
        put_ch(o, ' ');
        put_out_infobits(o, M8(6));
        return 0;
    case 0x70:
        NEED(34);
        PUTS(o, "rel ");
        put_new_cid_rel_tid(o, c, "; tid ");
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Btree (nbtree.py)                                                                        */

/* delvacuum_desc() of 16+: deleted offsets, then the updated posting-list tuples */
static int check_delvacuum(const uint8_t *b, uint32_t bl, uint32_t ndel, uint32_t nupd) {
    uint64_t upd = 2 * (uint64_t)ndel;
    uint64_t pos = upd + 2 * (uint64_t)nupd;
    if (pos > bl)
        return FALLBACK;
    for (uint32_t i = 0; i < nupd; i++) {
        if (pos + 2 > bl)
            return FALLBACK;
        pos += 2 + 2 * (uint64_t)rd_u16(b, pos);
        if (pos > bl)
            return FALLBACK;
    }
    return 0;
}

static void put_delvacuum(Out *o, const uint8_t *b, uint32_t ndel, uint32_t nupd) {
    PUTS(o, ", deleted:");
    put_u16_array(o, b, 0, ndel);
    PUTS(o, ", updated: [");
    uint64_t upd = 2 * (uint64_t)ndel;
    uint64_t pos = upd + 2 * (uint64_t)nupd;
    for (uint32_t i = 0; i < nupd; i++) {
        uint16_t n = rd_u16(b, pos);
        if (i) PUTS(o, ", ");
        PUTS(o, "{ off: "); put_u64(o, rd_u16(b, upd + 2 * (uint64_t)i));
        PUTS(o, ", nptids: "); put_u64(o, n);
        PUTS(o, ", ptids: [");
        for (uint32_t j = 0; j < n; j++) {
            if (j) PUTS(o, ", ");
            put_u64(o, rd_u16(b, pos + 2 + 2 * (uint64_t)j));
        }
        PUTS(o, "] }");
        pos += 2 + 2 * (uint64_t)n;
    }
    put_ch(o, ']');
}

static void put_xid64(Out *o, uint64_t v) {
    put_u64(o, v >> 32);
    put_ch(o, ':');
    put_u64(o, v & 0xFFFFFFFFu);
}

static int desc_btree(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    int major = c->major;
    const uint8_t *b;
    uint32_t bl;
    if (major >= 16) {
        int cat17 = major >= 17;
        switch (info) {
        case 0x00: case 0x10: case 0x20: case 0x50:  /* INSERT_LEAF/UPPER/META/POST */
            NEED(2);
            PUTS(o, "off: "); put_u64(o, M16(0));
            return 0;
        case 0x30: case 0x40:  /* SPLIT_L, SPLIT_R */
            NEED(10);
            PUTS(o, "level: "); put_u64(o, M32(0));
            PUTS(o, ", firstrightoff: "); put_u64(o, M16(4));
            PUTS(o, ", newitemoff: "); put_u64(o, M16(6));
            PUTS(o, ", postingoff: "); put_u64(o, M16(8));
            return 0;
        case 0x60:
            NEED(2);
            PUTS(o, "nintervals: "); put_u64(o, M16(0));
            return 0;
        case 0xC0: {  /* VACUUM: ndeleted, nupdated */
            NEED(4);
            uint32_t ndel = M16(0), nupd = M16(2);
            int has = block0_data(c, &b, &bl);
            if (has && check_delvacuum(b, bl, ndel, nupd))
                return FALLBACK;
            PUTS(o, "ndeleted: "); put_u64(o, ndel);
            PUTS(o, ", nupdated: "); put_u64(o, nupd);
            if (has)
                put_delvacuum(o, b, ndel, nupd);
            return 0;
        }
        case 0x70: {  /* DELETE: snapshotConflictHorizon, ndeleted, nupdated, (17) isCatalogRel */
            NEED(cat17 ? 9 : 8);
            uint32_t ndel = M16(4), nupd = M16(6);
            int has = block0_data(c, &b, &bl);
            if (has && check_delvacuum(b, bl, ndel, nupd))
                return FALLBACK;
            PUTS(o, "snapshotConflictHorizon: "); put_u64(o, M32(0));
            PUTS(o, ", ndeleted: "); put_u64(o, ndel);
            PUTS(o, ", nupdated: "); put_u64(o, nupd);
            if (cat17) {
                PUTS(o, ", isCatalogRel: ");
                put_tf(o, M8(8));
            }
            if (has)
                put_delvacuum(o, b, ndel, nupd);
            return 0;
        }
        case 0xB0:  /* MARK_PAGE_HALFDEAD */
            NEED(20);
            PUTS(o, "topparent: "); put_u64(o, M32(16));
            PUTS(o, ", leaf: "); put_u64(o, M32(4));
            PUTS(o, ", left: "); put_u64(o, M32(8));
            PUTS(o, ", right: "); put_u64(o, M32(12));
            return 0;
        case 0x80: case 0x90:  /* UNLINK_PAGE(_META) */
            NEED(36);
            PUTS(o, "left: "); put_u64(o, M32(0));
            PUTS(o, ", right: "); put_u64(o, M32(4));
            PUTS(o, ", level: "); put_u64(o, M32(8));
            PUTS(o, ", safexid: "); put_xid64(o, rd_u64(c->m, 16));
            PUTS(o, ", leafleft: "); put_u64(o, M32(24));
            PUTS(o, ", leafright: "); put_u64(o, M32(28));
            PUTS(o, ", leaftopparent: "); put_u64(o, M32(32));
            return 0;
        case 0xA0:  /* NEWROOT */
            NEED(8);
            PUTS(o, "level: "); put_u64(o, M32(4));
            return 0;
        case 0xD0:  /* REUSE_PAGE: locator, block, snapshotConflictHorizon, (17) isCatalogRel */
            NEED(cat17 ? 25 : 24);
            PUTS(o, "rel: "); put_u64(o, M32(0));
            put_ch(o, '/'); put_u64(o, M32(4));
            put_ch(o, '/'); put_u64(o, M32(8));
            PUTS(o, ", snapshotConflictHorizon: "); put_xid64(o, rd_u64(c->m, 16));
            if (cat17) {
                PUTS(o, ", isCatalogRel: ");
                put_tf(o, M8(24));
            }
            return 0;
        case 0xE0:  /* META_CLEANUP: xl_btree_metadata in block 0's data */
            if (!block0_data(c, &b, &bl) || bl < 24)
                return FALLBACK;
            PUTS(o, "last_cleanup_num_delpages: "); put_u64(o, rd_u32(b, 20));
            return 0;
        }
        return 0;
    }
    switch (info) {
    case 0x00: case 0x10: case 0x20: case 0x50:
        NEED(2);
        PUTS(o, "off "); put_u64(o, M16(0));
        return 0;
    case 0x30: case 0x40:
        NEED(10);
        PUTS(o, "level "); put_u64(o, M32(0));
        PUTS(o, ", firstrightoff "); put_u64(o, M16(4));
        PUTS(o, ", newitemoff "); put_u64(o, M16(6));
        PUTS(o, ", postingoff "); put_u64(o, M16(8));
        return 0;
    case 0x60:
        NEED(2);
        PUTS(o, "nintervals "); put_u64(o, M16(0));
        return 0;
    case 0xC0:
        NEED(4);
        PUTS(o, "ndeleted "); put_u64(o, M16(0));
        PUTS(o, "; nupdated "); put_u64(o, M16(2));
        return 0;
    case 0xB0:
        NEED(20);
        PUTS(o, "topparent "); put_u64(o, M32(16));
        PUTS(o, "; leaf "); put_u64(o, M32(4));
        PUTS(o, "; left "); put_u64(o, M32(8));
        PUTS(o, "; right "); put_u64(o, M32(12));
        return 0;
    case 0xA0:
        NEED(8);
        PUTS(o, "lev "); put_u64(o, M32(4));
        return 0;
    }
    if (major <= 13) {
        switch (info) {
        case 0x70:  /* DELETE: latestRemovedXid, ndeleted (uint32) */
            NEED(8);
            PUTS(o, "latestRemovedXid "); put_u64(o, M32(0));
            PUTS(o, "; ndeleted "); put_u64(o, M32(4));
            return 0;
        case 0x80: case 0x90:  /* leftsib, rightsib, leafleftsib, leafrightsib, topparent, btpo_xact */
            NEED(24);
            PUTS(o, "left "); put_u64(o, M32(0));
            PUTS(o, "; right "); put_u64(o, M32(4));
            PUTS(o, "; btpo_xact "); put_u64(o, M32(20));
            PUTS(o, "; leafleft "); put_u64(o, M32(8));
            PUTS(o, "; leafright "); put_u64(o, M32(12));
            PUTS(o, "; topparent "); put_u64(o, M32(16));
            return 0;
        case 0xD0:  /* node, block, latestRemovedXid */
            NEED(20);
            PUTS(o, "rel "); put_u64(o, M32(0));
            put_ch(o, '/'); put_u64(o, M32(4));
            put_ch(o, '/'); put_u64(o, M32(8));
            PUTS(o, "; latestRemovedXid "); put_u64(o, M32(16));
            return 0;
        case 0xE0: {
            if (!block0_data(c, &b, &bl) || bl < 32)
                return FALLBACK;
            double v;
            memcpy(&v, b + 24, 8);
            if (v != v || v - v != 0)  /* nan, inf: Python and C spell them differently */
                return FALLBACK;
            char buf[400];
            int k = snprintf(buf, sizeof buf, "%f", v);
            if (k < 0 || k >= (int)sizeof buf)
                return FALLBACK;
            PUTS(o, "oldest_btpo_xact "); put_u64(o, rd_u32(b, 20));
            PUTS(o, "; last_cleanup_num_heap_tuples: ");
            put(o, buf, (size_t)k);
            return 0;
        }
        }
        return 0;
    }
    switch (info) {
    case 0x70:
        NEED(8);
        PUTS(o, "latestRemovedXid "); put_u64(o, M32(0));
        PUTS(o, "; ndeleted "); put_u64(o, M16(4));
        PUTS(o, "; nupdated "); put_u64(o, M16(6));
        return 0;
    case 0x80: case 0x90:
        NEED(36);
        PUTS(o, "left "); put_u64(o, M32(0));
        PUTS(o, "; right "); put_u64(o, M32(4));
        PUTS(o, "; level "); put_u64(o, M32(8));
        PUTS(o, "; safexid "); put_xid64(o, rd_u64(c->m, 16));
        PUTS(o, "; leafleft "); put_u64(o, M32(24));
        PUTS(o, "; leafright "); put_u64(o, M32(28));
        PUTS(o, "; leaftopparent "); put_u64(o, M32(32));
        return 0;
    case 0xD0:
        NEED(24);
        PUTS(o, "rel "); put_u64(o, M32(0));
        put_ch(o, '/'); put_u64(o, M32(4));
        put_ch(o, '/'); put_u64(o, M32(8));
        PUTS(o, "; latestRemovedXid "); put_xid64(o, rd_u64(c->m, 16));
        return 0;
    case 0xE0:
        if (!block0_data(c, &b, &bl) || bl < 24)
            return FALLBACK;
        PUTS(o, "last_cleanup_num_delpages "); put_u64(o, rd_u32(b, 20));
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Transaction (xact.py)                                                                    */

#define XINFO_HAS_DBINFO (1u << 0)
#define XINFO_HAS_SUBXACTS (1u << 1)
#define XINFO_HAS_RELFILENODES (1u << 2)
#define XINFO_HAS_INVALS (1u << 3)
#define XINFO_HAS_TWOPHASE (1u << 4)
#define XINFO_HAS_ORIGIN (1u << 5)
#define XINFO_HAS_GID (1u << 7)
#define XINFO_HAS_DROPPED_STATS (1u << 8)
#define COMPLETION_APPLY_FEEDBACK (1u << 29)
#define COMPLETION_UPDATE_RELCACHE_FILE (1u << 30)
#define COMPLETION_FORCE_SYNC_COMMIT (1u << 31)

/* parse_commit_or_abort(): offsets into the main data (every array checked to lie in it) */
typedef struct {
    int64_t xact_time;
    uint32_t xinfo, db_id, ts_id;
    int32_t nsubxacts, nrels, nstats, nmsgs;
    uint32_t subxacts_off, rels_off, stats_off, msgs_off;
    uint32_t twophase_xid;
    uint32_t gid_off, gid_len;
    uint64_t origin_lsn;
    int64_t origin_timestamp;
} XactParsed;

/* a count at pos followed by n items of `size`: in the data, not negative */
#define COUNTED(pos, n, size, off) do {                                  \
        NEED((uint64_t)(pos) + 4);                                       \
        (n) = MI32(pos);                                                 \
        if ((n) < 0) return FALLBACK;                                    \
        (off) = (pos) + 4;                                               \
        NEED((uint64_t)(off) + (uint64_t)(size) * (uint64_t)(n));        \
        (pos) = (off) + (uint32_t)(size) * (uint32_t)(n);                \
    } while (0)

static int parse_commit_or_abort(const Ctx *c, int is_commit, XactParsed *p) {
    memset(p, 0, sizeof *p);
    NEED(8);
    p->xact_time = rd_i64(c->m, 0);
    uint32_t pos = 8;
    if (c->r->info & 0x80) {
        NEED(pos + 4);
        p->xinfo = M32(pos);
        pos += 4;
    }
    uint32_t x = p->xinfo;
    if (x & XINFO_HAS_DBINFO) {
        NEED(pos + 8);
        p->db_id = M32(pos);
        p->ts_id = M32(pos + 4);
        pos += 8;
    }
    if (x & XINFO_HAS_SUBXACTS)
        COUNTED(pos, p->nsubxacts, 4, p->subxacts_off);
    if (x & XINFO_HAS_RELFILENODES)
        COUNTED(pos, p->nrels, 12, p->rels_off);
    if (c->major >= 15 && (x & XINFO_HAS_DROPPED_STATS))
        COUNTED(pos, p->nstats, c->major >= 18 ? 16 : 12, p->stats_off);
    if (is_commit && (x & XINFO_HAS_INVALS))
        COUNTED(pos, p->nmsgs, 16, p->msgs_off);
    if (x & XINFO_HAS_TWOPHASE) {
        NEED(pos + 4);
        p->twophase_xid = M32(pos);
        pos += 4;
        if (x & XINFO_HAS_GID) {
            if (pos >= c->mlen)
                return FALLBACK;
            const uint8_t *z = memchr(c->m + pos, 0, c->mlen - pos);
            if (z == NULL)
                return FALLBACK;
            p->gid_off = pos;
            p->gid_len = (uint32_t)(z - (c->m + pos));
            pos += p->gid_len + 1;
        }
    }
    if (x & XINFO_HAS_ORIGIN) {  /* stored unaligned */
        NEED((uint64_t)pos + 16);
        p->origin_lsn = rd_u64(c->m, pos);
        p->origin_timestamp = rd_i64(c->m, pos + 8);
    }
    return 0;
}

static void put_xact_rels(Out *o, const Ctx *c, const char *label, uint32_t off, int32_t n) {
    if (n <= 0)
        return;
    PUTS(o, "; ");
    put_str(o, label);
    put_ch(o, ':');
    for (int32_t i = 0; i < n; i++) {
        uint64_t p = off + 12 * (uint64_t)i;
        put_ch(o, ' ');
        put_relpath(o, rd_u32(c->m, p), rd_u32(c->m, p + 4), rd_u32(c->m, p + 8), 0, c->major);
    }
}

static void put_xact_subxacts(Out *o, const Ctx *c, uint32_t off, int32_t n) {
    if (n <= 0)
        return;
    PUTS(o, "; subxacts:");
    for (int32_t i = 0; i < n; i++) {
        put_ch(o, ' ');
        put_u64(o, rd_u32(c->m, off + 4 * (uint64_t)i));
    }
}

static void put_xact_stats(Out *o, const Ctx *c, const char *label, uint32_t off, int32_t n) {
    if (n <= 0)
        return;
    PUTS(o, "; ");
    put_str(o, label);
    PUTS(o, "dropped stats:");
    int size = c->major >= 18 ? 16 : 12;
    for (int32_t i = 0; i < n; i++) {
        uint64_t p = off + (uint64_t)size * (uint64_t)i;
        uint64_t objid = rd_u32(c->m, p + 8);
        if (c->major >= 18)
            objid |= (uint64_t)rd_u32(c->m, p + 12) << 32;
        put_ch(o, ' ');
        put_i64(o, rd_i32(c->m, p));
        put_ch(o, '/');
        put_u64(o, rd_u32(c->m, p + 4));
        put_ch(o, '/');
        put_u64(o, objid);
    }
}

static int put_xact_origin(Out *o, const Ctx *c, TsCache *tc, const XactParsed *p) {
    PUTS(o, "; origin: node ");
    put_u64(o, c->r->origin);
    PUTS(o, ", lsn ");
    put_lsn(o, p->origin_lsn);
    PUTS(o, ", at ");
    return put_timestamptz(o, tc, p->origin_timestamp);
}

static inline uint64_t maxalign(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* an array of n items of `size` at pos (checked), then pos past it MAXALIGNed */
#define ALIGNED(pos, n, size, off) do {                                  \
        if ((n) < 0) return FALLBACK;                                    \
        (off) = (pos);                                                   \
        NEED((uint64_t)(off) + (uint64_t)(size) * (uint64_t)(n));        \
        (pos) = (off) + maxalign((uint64_t)(size) * (uint64_t)(n));      \
    } while (0)

/* _desc_prepare() of parse_prepare(): xl_xact_prepare, then MAXALIGNed arrays */
static int desc_prepare(Out *o, const Ctx *c, TsCache *tc) {
    int major = c->major;
    int32_t nsub, ncommit, nabort, ncstats = 0, nastats = 0, nmsgs;
    int initfileinval;
    uint16_t gidlen;
    uint64_t origin_lsn, pos;
    int64_t origin_ts;
    if (major >= 15) {
        NEED(72);
        ncstats = MI32(40);
        nastats = MI32(44);
        nmsgs = MI32(48);
        initfileinval = M8(52) != 0;
        gidlen = M16(54);
        origin_lsn = rd_u64(c->m, 56);
        origin_ts = rd_i64(c->m, 64);
        pos = 72;
    } else {
        NEED(64);
        nmsgs = MI32(40);
        initfileinval = M8(44) != 0;
        gidlen = M16(46);
        origin_lsn = rd_u64(c->m, 48);
        origin_ts = rd_i64(c->m, 56);
        pos = 64;
    }
    nsub = MI32(28);
    ncommit = MI32(32);
    nabort = MI32(36);
    uint64_t gid = pos, sub, crels, arels, cstats, astats;
    NEED(gid + gidlen);
    const uint8_t *z = memchr(c->m + gid, 0, gidlen);
    size_t gid_len = z ? (size_t)(z - (c->m + gid)) : gidlen;
    pos += maxalign(gidlen);
    int ssize = major >= 18 ? 16 : 12;
    ALIGNED(pos, nsub, 4, sub);
    ALIGNED(pos, ncommit, 12, crels);
    ALIGNED(pos, nabort, 12, arels);
    ALIGNED(pos, ncstats, ssize, cstats);
    ALIGNED(pos, nastats, ssize, astats);
    NEED_INVALS(pos, nmsgs);
    PUTS(o, "gid ");
    if (put_ascii(o, c->m + gid, gid_len))
        return FALLBACK;
    PUTS(o, ": ");
    if (put_timestamptz(o, tc, rd_i64(c->m, 16)))
        return FALLBACK;
    put_xact_rels(o, c, "rels(commit)", (uint32_t)crels, ncommit);
    put_xact_rels(o, c, "rels(abort)", (uint32_t)arels, nabort);
    if (major >= 15) {
        put_xact_stats(o, c, "commit ", (uint32_t)cstats, ncstats);
        put_xact_stats(o, c, "abort ", (uint32_t)astats, nastats);
    }
    put_xact_subxacts(o, c, (uint32_t)sub, nsub);
    put_invalidations(o, c->m, pos, nmsgs, M32(12), 0, initfileinval, major);
    if (major >= 15 && c->r->origin != 0) {
        XactParsed p;
        memset(&p, 0, sizeof p);
        p.origin_lsn = origin_lsn;
        p.origin_timestamp = origin_ts;
        if (put_xact_origin(o, c, tc, &p))
            return FALLBACK;
    }
    return 0;
}

static int desc_xact(Out *o, const Ctx *c, TsCache *tc) {
    uint8_t op = c->r->info & 0x70;
    XactParsed p;
    switch (op) {
    case 0x00:
    case 0x30:  /* COMMIT, COMMIT_PREPARED */
        if (parse_commit_or_abort(c, 1, &p))
            return FALLBACK;
        if (p.twophase_xid) {
            put_u64(o, p.twophase_xid);
            PUTS(o, ": ");
        }
        if (put_timestamptz(o, tc, p.xact_time))
            return FALLBACK;
        put_xact_rels(o, c, "rels", p.rels_off, p.nrels);
        put_xact_subxacts(o, c, p.subxacts_off, p.nsubxacts);
        if (c->major >= 15)
            put_xact_stats(o, c, "", p.stats_off, p.nstats);
        put_invalidations(o, c->m, p.msgs_off, p.nmsgs, p.db_id, p.ts_id,
                          (p.xinfo & COMPLETION_UPDATE_RELCACHE_FILE) != 0, c->major);
        if (c->major >= 15 && (p.xinfo & COMPLETION_APPLY_FEEDBACK))
            PUTS(o, "; apply_feedback");
        if (p.xinfo & COMPLETION_FORCE_SYNC_COMMIT)
            PUTS(o, "; sync");
        if ((p.xinfo & XINFO_HAS_ORIGIN) && put_xact_origin(o, c, tc, &p))
            return FALLBACK;
        return 0;
    case 0x20:
    case 0x40:  /* ABORT, ABORT_PREPARED */
        if (parse_commit_or_abort(c, 0, &p))
            return FALLBACK;
        if (p.twophase_xid) {
            put_u64(o, p.twophase_xid);
            PUTS(o, ": ");
        }
        if (put_timestamptz(o, tc, p.xact_time))
            return FALLBACK;
        put_xact_rels(o, c, "rels", p.rels_off, p.nrels);
        put_xact_subxacts(o, c, p.subxacts_off, p.nsubxacts);
        if (c->major >= 14 && (p.xinfo & XINFO_HAS_ORIGIN) && put_xact_origin(o, c, tc, &p))
            return FALLBACK;
        if (c->major >= 15)
            put_xact_stats(o, c, "", p.stats_off, p.nstats);
        return 0;
    case 0x50: {  /* ASSIGNMENT: xtop, nsubxacts, xsub[] */
        NEED(8);
        int32_t n = MI32(4);
        if (n < 0)
            n = 0;
        NEED(8 + 4 * (uint64_t)n);
        PUTS(o, "xtop "); put_u64(o, M32(0));
        PUTS(o, ": subxacts:");
        for (int32_t i = 0; i < n; i++) {
            put_ch(o, ' ');
            put_u64(o, M32(8 + 4 * (uint64_t)i));
        }
        return 0;
    }
    case 0x60:  /* INVALIDATIONS (14+): nmsgs, msgs */
        if (c->major < 14)
            return 0;
        {
            NEED(4);
            int32_t nmsgs = MI32(0);
            NEED_INVALS(4, nmsgs);
            put_invalidations(o, c->m, 4, nmsgs, 0, 0, 0, c->major);
        }
        return 0;
    case 0x10:
        return desc_prepare(o, c, tc);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* XLOG (xlog.py)                                                                           */

/* wal_level_name(): wal_level_options' first name of the value */
static void put_wal_level(Out *o, int32_t v) {
    switch (v) {
    case 0: PUTS(o, "minimal"); break;
    case 1: PUTS(o, "replica"); break;
    case 2: PUTS(o, "logical"); break;
    default: PUTS(o, "?"); break;
    }
}

static int desc_xlog(Out *o, const Ctx *c, TsCache *tc) {
    uint8_t info = c->r->info & 0xF0;
    int major = c->major;
    switch (info) {
    case 0x00:
    case 0x10:  /* CHECKPOINT_SHUTDOWN, CHECKPOINT_ONLINE: CheckPoint */
        NEED(84);
        PUTS(o, "redo "); put_lsn(o, rd_u64(c->m, 0));
        PUTS(o, "; tli "); put_u64(o, M32(8));
        PUTS(o, "; prev tli "); put_u64(o, M32(12));
        PUTS(o, "; fpw ");
        if (M8(16)) PUTS(o, "true; "); else PUTS(o, "false; ");
        if (major >= 17) {
            PUTS(o, "wal_level ");
            put_wal_level(o, MI32(20));
            PUTS(o, "; ");
        }
        PUTS(o, "xid "); put_xid64(o, rd_u64(c->m, 24));
        PUTS(o, "; oid "); put_u64(o, M32(32));
        PUTS(o, "; multi "); put_u64(o, M32(36));
        PUTS(o, "; offset "); put_u64(o, M32(40));
        PUTS(o, "; oldest xid "); put_u64(o, M32(44));
        PUTS(o, " in DB "); put_u64(o, M32(48));
        PUTS(o, "; oldest multi "); put_u64(o, M32(52));
        PUTS(o, " in DB "); put_u64(o, M32(56));
        PUTS(o, "; oldest/newest commit timestamp xid: "); put_u64(o, M32(72));
        put_ch(o, '/'); put_u64(o, M32(76));
        PUTS(o, "; oldest running xid "); put_u64(o, M32(80));
        if (info == 0x00) PUTS(o, "; shutdown"); else PUTS(o, "; online");
        return 0;
    case 0x30:  /* NEXTOID */
        NEED(4);
        put_u64(o, M32(0));
        return 0;
    case 0x70: {  /* RESTORE_POINT: rp_time, rp_name */
        uint32_t len;
        if (c->mlen < 8)
            return FALLBACK;
        return put_cstring(o, c, 8, &len);
    }
    case 0x50:  /* BACKUP_END */
        NEED(8);
        put_lsn(o, rd_u64(c->m, 0));
        return 0;
    case 0x60:  /* PARAMETER_CHANGE */
        NEED(26);
        PUTS(o, "max_connections="); put_i64(o, MI32(0));
        PUTS(o, " max_worker_processes="); put_i64(o, MI32(4));
        PUTS(o, " max_wal_senders="); put_i64(o, MI32(8));
        PUTS(o, " max_prepared_xacts="); put_i64(o, MI32(12));
        PUTS(o, " max_locks_per_xact="); put_i64(o, MI32(16));
        PUTS(o, " wal_level="); put_wal_level(o, MI32(20));
        if (M8(24)) PUTS(o, " wal_log_hints=on"); else PUTS(o, " wal_log_hints=off");
        if (M8(25)) PUTS(o, " track_commit_timestamp=on");
        else PUTS(o, " track_commit_timestamp=off");
        return 0;
    case 0x80:  /* FPW_CHANGE */
        NEED(1);
        if (M8(0)) PUTS(o, "true"); else PUTS(o, "false");
        return 0;
    case 0x90:  /* END_OF_RECOVERY: end_time, ThisTimeLineID, PrevTimeLineID, (17) wal_level */
        NEED(major >= 17 ? 20 : 16);
        PUTS(o, "tli "); put_u64(o, M32(8));
        PUTS(o, "; prev tli "); put_u64(o, M32(12));
        PUTS(o, "; time ");
        if (put_timestamptz(o, tc, rd_i64(c->m, 0)))
            return FALLBACK;
        if (major >= 17) {
            PUTS(o, "; wal_level ");
            put_wal_level(o, MI32(16));
        }
        return 0;
    case 0xD0:  /* OVERWRITE_CONTRECORD: overwritten_lsn, overwrite_time */
        NEED(16);
        PUTS(o, "lsn "); put_lsn(o, rd_u64(c->m, 0));
        PUTS(o, "; time ");
        return put_timestamptz(o, tc, rd_i64(c->m, 8));
    case 0xE0:  /* CHECKPOINT_REDO (17+) */
        if (major < 17)
            return 0;
        NEED(4);
        PUTS(o, "wal_level ");
        put_wal_level(o, MI32(0));
        return 0;
    }
    return 0;  /* NOOP, SWITCH, FPI, FPI_FOR_HINT: no text */
}

/* ---------------------------------------------------------------------------------------- */
/* Standby (standby.py)                                                                     */

static int desc_standby(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    if (info == 0x00) {  /* LOCK: nlocks, locks[] {xid, dbOid, relOid} */
        NEED(4);
        int32_t n = MI32(0);
        if (n < 0)
            n = 0;
        NEED(4 + 12 * (uint64_t)n);
        for (int32_t i = 0; i < n; i++) {
            uint64_t p = 4 + 12 * (uint64_t)i;
            PUTS(o, "xid "); put_u64(o, M32(p));
            PUTS(o, " db "); put_u64(o, M32(p + 4));
            PUTS(o, " rel "); put_u64(o, M32(p + 8));
            put_ch(o, ' ');
        }
        return 0;
    }
    if (info == 0x10) {  /* RUNNING_XACTS */
        /* xcnt 0, subxcnt 4, subxid_overflow 8, nextXid 12, oldestRunningXid 16,
           latestCompletedXid 20, xids 24 */
        NEED(24);
        int32_t xcnt = MI32(0), subxcnt = MI32(4);
        uint64_t sub_off = 24 + 4 * (uint64_t)(xcnt > 0 ? xcnt : 0);
        if (xcnt > 0)
            NEED(sub_off);
        int subs = c->major >= 16 && subxcnt > 0;
        if (subs)
            NEED(sub_off + 4 * (uint64_t)subxcnt);
        PUTS(o, "nextXid "); put_u64(o, M32(12));
        PUTS(o, " latestCompletedXid "); put_u64(o, M32(20));
        PUTS(o, " oldestRunningXid "); put_u64(o, M32(16));
        if (xcnt > 0) {
            PUTS(o, "; "); put_i64(o, xcnt);
            PUTS(o, " xacts:");
            for (int32_t i = 0; i < xcnt; i++) {
                put_ch(o, ' ');
                put_u64(o, M32(24 + 4 * (uint64_t)i));
            }
        }
        if (M8(8)) {
            if (c->major >= 16) PUTS(o, "; subxid overflowed"); else PUTS(o, "; subxid ovf");
        }
        if (subs) {
            PUTS(o, "; "); put_i64(o, subxcnt);
            PUTS(o, " subxacts:");
            for (int32_t i = 0; i < subxcnt; i++) {
                put_ch(o, ' ');
                put_u64(o, M32(sub_off + 4 * (uint64_t)i));
            }
        }
        return 0;
    }
    if (info == 0x20) {  /* INVALIDATIONS: dbId, tsId, relcacheInitFileInval, nmsgs, msgs */
        NEED(16);
        int32_t nmsgs = MI32(12);
        NEED_INVALS(16, nmsgs);
        put_invalidations(o, c->m, 16, nmsgs, M32(0), M32(4), M8(8) != 0, c->major);
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Storage, CLOG, Database, RelMap, Sequence (smgr.py, clog.py, dbase.py, relmap.py, seq.py) */

static int desc_smgr(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    if (info == 0x10) {  /* CREATE: rlocator, forkNum */
        NEED(16);
        put_relpath(o, M32(0), M32(4), M32(8), MI32(12), c->major);
    } else if (info == 0x20) {  /* TRUNCATE: blkno, rlocator, flags */
        NEED(20);
        put_relpath(o, M32(4), M32(8), M32(12), 0, c->major);
        PUTS(o, " to "); put_u64(o, M32(0));
        PUTS(o, " blocks flags "); put_i64(o, MI32(16));
    }
    return 0;
}

static int desc_clog(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    int wide = c->major >= 17;  /* int64 page numbers */
    if (info == 0x00) {
        NEED(wide ? 8 : 4);
        PUTS(o, "page ");
        put_i64(o, wide ? rd_i64(c->m, 0) : MI32(0));
    } else if (info == 0x10) {  /* TRUNCATE: pageno, oldestXact, oldestXactDb */
        NEED(wide ? 12 : 8);
        PUTS(o, "page ");
        put_i64(o, wide ? rd_i64(c->m, 0) : MI32(0));
        PUTS(o, "; oldestXact ");
        put_u64(o, M32(wide ? 8 : 4));
    }
    return 0;
}

static int desc_dbase_drop(Out *o, const Ctx *c) {  /* db_id, ntablespaces, tablespace_ids[] */
    NEED(8);
    uint32_t db = M32(0);
    int32_t n = MI32(4);
    if (n < 0)
        n = 0;
    NEED(8 + 4 * (uint64_t)n);
    PUTS(o, "dir");
    for (int32_t i = 0; i < n; i++) {
        put_ch(o, ' ');
        put_u64(o, M32(8 + 4 * (uint64_t)i));
        put_ch(o, '/');
        put_u64(o, db);
    }
    return 0;
}

static int desc_dbase(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    if (info == 0x00) {  /* CREATE (13-14), CREATE_FILE_COPY: db, ts, src db, src ts */
        NEED(16);
        PUTS(o, "copy dir "); put_u64(o, M32(12));
        put_ch(o, '/'); put_u64(o, M32(8));
        PUTS(o, " to "); put_u64(o, M32(4));
        put_ch(o, '/'); put_u64(o, M32(0));
        return 0;
    }
    if (c->major < 15)
        return info == 0x10 ? desc_dbase_drop(o, c) : 0;
    if (info == 0x10) {  /* CREATE_WAL_LOG: db_id, tablespace_id */
        NEED(8);
        PUTS(o, "create dir "); put_u64(o, M32(4));
        put_ch(o, '/'); put_u64(o, M32(0));
        return 0;
    }
    if (info == 0x20)
        return desc_dbase_drop(o, c);
    return 0;
}

static int desc_relmap(Out *o, const Ctx *c) {
    if ((c->r->info & 0xF0) != 0x00)
        return 0;
    NEED(12);  /* dbid, tsid, nbytes */
    PUTS(o, "database "); put_u64(o, M32(0));
    PUTS(o, " tablespace "); put_u64(o, M32(4));
    PUTS(o, " size ");
    if (c->major < 15) put_u64(o, M32(8)); else put_i64(o, MI32(8));
    return 0;
}

static int desc_seq(Out *o, const Ctx *c) {
    if ((c->r->info & 0xF0) != 0x00)
        return 0;
    NEED(12);  /* xl_seq_rec: locator */
    PUTS(o, "rel "); put_u64(o, M32(0));
    put_ch(o, '/'); put_u64(o, M32(4));
    put_ch(o, '/'); put_u64(o, M32(8));
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* MultiXact, CommitTs (mxact.py, committs.py)                                              */

static const char *const MXACT_STATUS[6] = {"(keysh) ", "(sh) ", "(fornokeyupd) ", "(forupd) ",
                                            "(nokeyupd) ", "(upd) "};

/* a page number: int64 from 17 on */
static int put_pageno(Out *o, const Ctx *c) {
    NEED(c->major >= 17 ? 8 : 4);
    put_i64(o, c->major >= 17 ? rd_i64(c->m, 0) : MI32(0));
    return 0;
}

static int desc_mxact(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    if (info == 0x00 || info == 0x10)  /* ZERO_OFF_PAGE, ZERO_MEM_PAGE */
        return put_pageno(o, c);
    if (info == 0x20) {  /* CREATE_ID: mid, moff, nmembers, members[] {xid, status} */
        NEED(12);
        int32_t n = MI32(8);
        if (n < 0)
            return FALLBACK;
        NEED(12 + 8 * (uint64_t)n);
        put_u64(o, M32(0));
        PUTS(o, " offset "); put_u64(o, M32(4));
        PUTS(o, " nmembers "); put_i64(o, n);
        PUTS(o, ": ");
        for (int32_t i = 0; i < n; i++) {
            uint64_t p = 12 + 8 * (uint64_t)i;
            int32_t st = MI32(p + 4);
            put_u64(o, M32(p));
            put_ch(o, ' ');
            put_str(o, st >= 0 && st <= 5 ? MXACT_STATUS[st] : "(unk) ");
        }
        return 0;
    }
    if (info == 0x30) {  /* TRUNCATE_ID */
        NEED(20);
        PUTS(o, "offsets ["); put_u64(o, M32(4));
        PUTS(o, ", "); put_u64(o, M32(8));
        PUTS(o, "), members ["); put_u64(o, M32(12));
        PUTS(o, ", "); put_u64(o, M32(16));
        PUTS(o, ")");
    }
    return 0;
}

static int desc_committs(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    int wide = c->major >= 17;
    if (info == 0x00)
        return put_pageno(o, c);
    if (info == 0x10) {  /* TRUNCATE: pageno, oldestXid */
        NEED(wide ? 12 : 8);
        PUTS(o, "pageno ");
        put_i64(o, wide ? rd_i64(c->m, 0) : MI32(0));
        PUTS(o, ", oldestXid ");
        put_u64(o, M32(wide ? 8 : 4));
        return 0;
    }
    if (info == 0x20 && c->major <= 13) {  /* SETTS: timestamp 0, nodeid 8, mainxid 12, subxids */
        NEED(16);
        PUTS(o, "set ");
        if (put_timestamptz(o, c->tc, rd_i64(c->m, 0)))
            return FALLBACK;
        put_ch(o, '/'); put_u64(o, M16(8));
        PUTS(o, " for: "); put_u64(o, M32(12));
        for (uint64_t p = 16; p + 4 <= c->mlen; p += 4) {
            PUTS(o, ", ");
            put_u64(o, M32(p));
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Gist, Hash, SPGist, BRIN, Generic, Gin (gist.py, hash.py, spgist.py, brin.py, generic.py,  */
/* gin.py)                                                                                  */

static int desc_gist(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    int major = c->major;
    const char *horizon = major >= 16 ? "snapshotConflictHorizon" : "latestRemovedXid";
    switch (info) {
    case 0x20:  /* PAGE_REUSE: locator 0, block 12, horizon 16, isCatalogRel 24 */
        NEED(major >= 17 ? 25 : 24);
        PUTS(o, "rel "); put_u64(o, M32(0));
        put_ch(o, '/'); put_u64(o, M32(4));
        put_ch(o, '/'); put_u64(o, M32(8));
        PUTS(o, "; blk "); put_u64(o, M32(12));
        PUTS(o, "; "); put_str(o, horizon); put_ch(o, ' ');
        put_xid64(o, rd_u64(c->m, 16));
        if (major >= 17) {
            PUTS(o, ", isCatalogRel ");
            put_tf(o, M8(24));
        }
        return 0;
    case 0x10:  /* DELETE: horizon 0, ntodelete 4, isCatalogRel 6 */
        NEED(major >= 17 ? 7 : 6);
        PUTS(o, "delete: "); put_str(o, horizon); put_ch(o, ' ');
        put_u64(o, M32(0));
        PUTS(o, ", nitems: "); put_u64(o, M16(4));
        if (major >= 17) {
            PUTS(o, ", isCatalogRel ");
            put_tf(o, M8(6));
        }
        return 0;
    case 0x30:  /* PAGE_SPLIT: origrlink 0, orignsn 8, origleaf 16, npage 18 */
        NEED(20);
        PUTS(o, "page_split: splits to "); put_u64(o, M16(18));
        PUTS(o, " pages");
        return 0;
    case 0x60:  /* PAGE_DELETE: deleteXid 0, downlinkOffset 8 */
        NEED(10);
        PUTS(o, "deleteXid "); put_xid64(o, rd_u64(c->m, 0));
        PUTS(o, "; downlink "); put_u64(o, M16(8));
        return 0;
    }
    return 0;
}

/* a double as Python's format(x, "g") and C's "%g" both print it (finite values only) */
static int put_double_g(Out *o, double v) {
    if (v != v || v - v != 0)
        return FALLBACK;
    char buf[64];
    int k = snprintf(buf, sizeof buf, "%g", v);
    if (k < 0 || k >= (int)sizeof buf)
        return FALLBACK;
    put(o, buf, (size_t)k);
    return 0;
}

static double rd_f64(const uint8_t *p, uint64_t off) {
    double v;
    memcpy(&v, p + off, 8);
    return v;
}

static int desc_hash(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    int major = c->major;
    switch (info) {
    case 0x00:  /* INIT_META_PAGE: num_tuples (double) 0, procid 8, ffactor 12 */
        NEED(14);
        PUTS(o, "num_tuples ");
        if (put_double_g(o, rd_f64(c->m, 0)))
            return FALLBACK;
        PUTS(o, ", fillfactor "); put_u64(o, M16(12));
        return 0;
    case 0x10:
        NEED(2);
        PUTS(o, "bmsize "); put_u64(o, M16(0));
        return 0;
    case 0x20:
        NEED(2);
        PUTS(o, "off "); put_u64(o, M16(0));
        return 0;
    case 0x30:  /* ADD_OVFL_PAGE: bmsize, bmpage_found */
        NEED(3);
        PUTS(o, "bmsize "); put_u64(o, M16(0));
        PUTS(o, ", bmpage_found "); put_tf(o, M8(2));
        return 0;
    case 0x40:  /* SPLIT_ALLOCATE_PAGE: new_bucket 0, old flag 4, new flag 6, flags 8 */
        NEED(9);
        PUTS(o, "new_bucket "); put_u64(o, M32(0));
        PUTS(o, ", meta_page_masks_updated "); put_tf(o, M8(8) & 1);
        PUTS(o, ", issplitpoint_changed "); put_tf(o, M8(8) & 2);
        return 0;
    case 0x60:
        NEED(4);
        PUTS(o, "old_bucket_flag "); put_u64(o, M16(0));
        PUTS(o, ", new_bucket_flag "); put_u64(o, M16(2));
        return 0;
    case 0x70:  /* MOVE_PAGE_CONTENTS: ntups, is_prim_bucket_same_wrt */
        NEED(3);
        PUTS(o, "ntups "); put_u64(o, M16(0));
        PUTS(o, ", is_primary "); put_tf(o, M8(2));
        return 0;
    case 0x80:  /* SQUEEZE_PAGE: prevblkno 0, nextblkno 4, ntups 8, is_prim_bucket_same_wrt 10 */
        NEED(11);
        PUTS(o, "prevblkno "); put_u64(o, M32(0));
        PUTS(o, ", nextblkno "); put_u64(o, M32(4));
        PUTS(o, ", ntups "); put_u64(o, M16(8));
        PUTS(o, ", is_primary "); put_tf(o, M8(10));
        return 0;
    case 0x90:  /* DELETE: clear_dead_marking, is_primary_bucket_page */
        NEED(2);
        PUTS(o, "clear_dead_marking "); put_tf(o, M8(0));
        PUTS(o, ", is_primary "); put_tf(o, M8(1));
        return 0;
    case 0xB0:
        NEED(8);
        PUTS(o, "ntuples ");
        return put_double_g(o, rd_f64(c->m, 0));
    case 0xC0:  /* VACUUM_ONE_PAGE */
        if (major < 16) {
            NEED(8);
            PUTS(o, "ntuples "); put_i64(o, MI32(4));
            if (major <= 13) PUTS(o, ", latest removed xid "); else PUTS(o, ", latestRemovedXid ");
            put_u64(o, M32(0));
            return 0;
        }
        NEED(major >= 17 ? 7 : 6);
        PUTS(o, "ntuples "); put_u64(o, M16(4));
        PUTS(o, ", snapshotConflictHorizon "); put_u64(o, M32(0));
        if (major >= 17) {
            PUTS(o, ", isCatalogRel ");
            put_tf(o, M8(6));
        }
        return 0;
    }
    return 0;  /* SPLIT_PAGE, SPLIT_CLEANUP: no text */
}

static int desc_spgist(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    int major = c->major;
    if (major <= 13) {
        switch (info) {
        case 0x10:
            NEED(8);
            PUTS(o, "add leaf to page; off "); put_u64(o, M16(2));
            PUTS(o, "; headoff "); put_u64(o, M16(4));
            PUTS(o, "; parentoff "); put_u64(o, M16(6));
            if (M8(0)) PUTS(o, " (newpage)");
            if (M8(1)) PUTS(o, " (nulls)");
            return 0;
        case 0x20:
            NEED(2);
            put_u64(o, M16(0));
            PUTS(o, " leafs");
            return 0;
        case 0x30:
            NEED(2);
            PUTS(o, "off "); put_u64(o, M16(0));
            return 0;
        case 0x40:
            NEED(6);
            PUTS(o, "prefix off: "); put_u64(o, M16(0));
            PUTS(o, ", postfix off: "); put_u64(o, M16(2));
            PUTS(o, " (same "); put_u64(o, M8(5));
            PUTS(o, ", new "); put_u64(o, M8(4));
            put_ch(o, ')');
            return 0;
        case 0x50:
            NEED(13);
            PUTS(o, "ndel "); put_u64(o, M16(2));
            PUTS(o, "; nins "); put_u64(o, M16(4));
            if (M8(12)) PUTS(o, " (innerIsParent)");
            if (M8(0)) PUTS(o, " (isRootSplit)");
            return 0;
        case 0x80:
            NEED(8);
            PUTS(o, "newest XID "); put_u64(o, M32(4));
            return 0;
        }
        return 0;
    }
    switch (info) {
    case 0x10:  /* ADD_LEAF */
        NEED(10);
        PUTS(o, "off: "); put_u64(o, M16(2));
        PUTS(o, ", headoff: "); put_u64(o, M16(4));
        PUTS(o, ", parentoff: "); put_u64(o, M16(6));
        PUTS(o, ", nodeI: "); put_u64(o, M16(8));
        if (M8(0)) PUTS(o, " (newpage)");
        if (M8(1)) PUTS(o, " (nulls)");
        return 0;
    case 0x20:  /* MOVE_LEAFS */
        NEED(10);
        PUTS(o, "nmoves: "); put_u64(o, M16(0));
        PUTS(o, ", parentoff: "); put_u64(o, M16(6));
        PUTS(o, ", nodeI: "); put_u64(o, M16(8));
        if (M8(2)) PUTS(o, " (newpage)");
        if (M8(3)) PUTS(o, " (replacedead)");
        if (M8(4)) PUTS(o, " (nulls)");
        return 0;
    case 0x30:  /* ADD_NODE */
        NEED(10);
        PUTS(o, "off: "); put_u64(o, M16(0));
        PUTS(o, ", newoff: "); put_u64(o, M16(2));
        PUTS(o, ", parentBlk: "); put_i64(o, (int8_t)M8(5));
        PUTS(o, ", parentoff: "); put_u64(o, M16(6));
        PUTS(o, ", nodeI: "); put_u64(o, M16(8));
        if (M8(4)) PUTS(o, " (newpage)");
        return 0;
    case 0x40:  /* SPLIT_TUPLE */
        NEED(6);
        PUTS(o, "prefixoff: "); put_u64(o, M16(0));
        PUTS(o, ", postfixoff: "); put_u64(o, M16(2));
        if (M8(4)) PUTS(o, " (newpage)");
        if (M8(5)) PUTS(o, " (same)");
        return 0;
    case 0x50:  /* PICKSPLIT */
        NEED(18);
        PUTS(o, "ndelete: "); put_u64(o, M16(2));
        PUTS(o, ", ninsert: "); put_u64(o, M16(4));
        PUTS(o, ", inneroff: "); put_u64(o, M16(8));
        PUTS(o, ", parentoff: "); put_u64(o, M16(14));
        PUTS(o, ", nodeI: "); put_u64(o, M16(16));
        if (M8(12)) PUTS(o, " (innerIsParent)");
        if (M8(11)) PUTS(o, " (nulls)");
        if (M8(0)) PUTS(o, " (isRootSplit)");
        return 0;
    case 0x60:  /* VACUUM_LEAF */
        NEED(8);
        PUTS(o, "ndead: "); put_u64(o, M16(0));
        PUTS(o, ", nplaceholder: "); put_u64(o, M16(2));
        PUTS(o, ", nmove: "); put_u64(o, M16(4));
        PUTS(o, ", nchain: "); put_u64(o, M16(6));
        return 0;
    case 0x70:
        NEED(2);
        PUTS(o, "ndelete: "); put_u64(o, M16(0));
        return 0;
    case 0x80:  /* VACUUM_REDIRECT: nToPlaceholder 0, firstPlaceholder 2, xid 4, isCatalogRel 8 */
        NEED(major >= 17 ? 9 : 8);
        PUTS(o, "ntoplaceholder: "); put_u64(o, M16(0));
        PUTS(o, ", firstplaceholder: "); put_u64(o, M16(2));
        if (major < 16) {
            PUTS(o, ", newestredirectxid: "); put_u64(o, M32(4));
            return 0;
        }
        PUTS(o, ", snapshotConflictHorizon: "); put_u64(o, M32(4));
        if (major >= 17) {
            PUTS(o, ", isCatalogRel: ");
            put_tf(o, M8(8));
        }
        return 0;
    }
    return 0;
}

static int desc_brin(Out *o, const Ctx *c) {
    switch (c->r->info & 0x70) {
    case 0x00:  /* CREATE_INDEX: pagesPerRange, version */
        NEED(6);
        put_ch(o, 'v'); put_u64(o, M16(4));
        PUTS(o, " pagesPerRange "); put_u64(o, M32(0));
        return 0;
    case 0x10:  /* INSERT: heapBlk, pagesPerRange, offnum */
        NEED(10);
        PUTS(o, "heapBlk "); put_u64(o, M32(0));
        PUTS(o, " pagesPerRange "); put_u64(o, M32(4));
        PUTS(o, " offnum "); put_u64(o, M16(8));
        return 0;
    case 0x20:  /* UPDATE: oldOffnum, then an xl_brin_insert at 4 */
        NEED(14);
        PUTS(o, "heapBlk "); put_u64(o, M32(4));
        PUTS(o, " pagesPerRange "); put_u64(o, M32(8));
        PUTS(o, " old offnum "); put_u64(o, M16(0));
        PUTS(o, ", new offnum "); put_u64(o, M16(12));
        return 0;
    case 0x30:
        NEED(2);
        PUTS(o, "offnum "); put_u64(o, M16(0));
        return 0;
    case 0x40:
        NEED(4);
        PUTS(o, "targetBlk "); put_u64(o, M32(0));
        return 0;
    case 0x50:  /* DESUMMARIZE: pagesPerRange, heapBlk, regOffset */
        NEED(10);
        PUTS(o, "pagesPerRange "); put_u64(o, M32(0));
        PUTS(o, ", heapBlk "); put_u64(o, M32(4));
        PUTS(o, ", page offset "); put_u64(o, M16(8));
        return 0;
    }
    return 0;
}

static int desc_generic(Out *o, const Ctx *c) {  /* (offset, length, bytes) fragments */
    uint64_t pos = 0, end = c->mlen;
    while (pos < end) {
        NEED(pos + 4);
        uint16_t offset = M16(pos), length = M16(pos + 2);
        pos += 4 + (uint64_t)length;
        PUTS(o, "offset "); put_u64(o, offset);
        PUTS(o, ", length "); put_u64(o, length);
        if (pos < end)
            PUTS(o, "; ");
    }
    return 0;
}

/* BlockIdData: two uint16 halves, high first */
static uint32_t rd_block_id(const uint8_t *p, uint64_t off) {
    return ((uint32_t)rd_u16(p, off) << 16) | rd_u16(p, off + 2);
}

/* _image_note() of block 0 when it has an image; 1 when it has none */
static int put_gin_image_note(Out *o, const Ctx *c) {
    const WalBlock *b = find_block(c->r, 0);
    if (b == NULL || !b->has_image)
        return 1;
    if (b->apply_image) PUTS(o, " (full page image)");
    else PUTS(o, " (full page image, for WAL verification)");
    return 0;
}

/* desc_recompress_leaf(): ginxlogRecompressDataLeaf at the start of block 0's data (nactions,
   then per action segno, action and its payload); FALLBACK where a read would leave the data */
static int put_gin_recompress_leaf(Out *o, const Ctx *c) {
    const uint8_t *b;
    uint32_t bl;
    block0_data(c, &b, &bl);
    if (bl < 2)
        return FALLBACK;
    uint16_t nactions = rd_u16(b, 0);
    put_ch(o, ' ');
    put_u64(o, nactions);
    PUTS(o, " segments:");
    uint64_t pos = 2;
    for (uint32_t i = 0; i < nactions; i++) {
        if (pos + 2 > bl)
            return FALLBACK;
        uint8_t segno = b[pos], action = b[pos + 1];
        pos += 2;
        uint32_t nitems = 0;
        if (action == 2 || action == 3) {  /* INSERT, REPLACE: a GinPostingList */
            if (pos + 8 > bl)
                return FALLBACK;
            uint64_t nbytes = rd_u16(b, pos + 6);
            pos += (8 + ((nbytes + 1) & ~(uint64_t)1) + 1) & ~(uint64_t)1;
        }
        if (action == 4) {  /* ADDITEMS */
            if (pos + 2 > bl)
                return FALLBACK;
            nitems = rd_u16(b, pos);
            pos += 2 + 6 * (uint64_t)nitems;
        }
        put_ch(o, ' ');
        put_u64(o, segno);
        if (action == 4) {
            PUTS(o, " (add ");
            put_u64(o, nitems);
            PUTS(o, " items)");
        } else if (action == 1) {
            PUTS(o, " (delete)");
        } else if (action == 2) {
            PUTS(o, " (insert)");
        } else if (action == 3) {
            PUTS(o, " (replace)");
        } else {
            PUTS(o, " unknown action ");
            put_u64(o, action);
            PUTS(o, " ???");
            break;
        }
    }
    return 0;
}

static int desc_gin(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    switch (info) {
    case 0x20: {  /* INSERT: flags, then child block ids when not a leaf */
        NEED(2);
        uint16_t flags = M16(0);
        int isdata = flags & 1, isleaf = flags & 2;
        if (!isleaf)
            NEED(10);
        const WalBlock *b0 = find_block(c->r, 0);
        int image = b0 != NULL && b0->has_image;
        const uint8_t *b = NULL;
        uint32_t bl = 0;
        if (!image) {
            block0_data(c, &b, &bl);
            if (!(isdata && isleaf) && bl < (isdata ? 12u : 3u))
                return FALLBACK;
        }
        PUTS(o, "isdata: "); put_tf(o, isdata);
        PUTS(o, " isleaf: "); put_tf(o, isleaf);
        if (!isleaf) {
            PUTS(o, " children: "); put_u64(o, rd_block_id(c->m, 2));
            put_ch(o, '/'); put_u64(o, rd_block_id(c->m, 6));
        }
        if (image) {
            put_gin_image_note(o, c);
        } else if (isdata && isleaf) {
            return put_gin_recompress_leaf(o, c);
        } else if (!isdata) {  /* ginxlogInsertEntry: offset, isDelete, tuple */
            PUTS(o, " isdelete: "); put_tf(o, b[2]);
        } else {  /* ginxlogInsertDataInternal: offset, PostingItem {child, key} */
            PUTS(o, " pitem: "); put_u64(o, rd_block_id(b, 2));
            put_ch(o, '-'); put_u64(o, rd_block_id(b, 6));
            put_ch(o, '/'); put_u64(o, rd_u16(b, 10));
        }
        return 0;
    }
    case 0x30: {  /* SPLIT: locator, rrlink, left, right, flags 24 */
        NEED(26);
        uint16_t flags = M16(24);
        PUTS(o, "isrootsplit: "); put_tf(o, flags & 4);
        PUTS(o, " isdata: "); put_tf(o, flags & 1);
        PUTS(o, " isleaf: "); put_tf(o, flags & 2);
        return 0;
    }
    case 0x90:  /* VACUUM_DATA_LEAF_PAGE: an image, or the recompressed segments */
        if (put_gin_image_note(o, c))
            return put_gin_recompress_leaf(o, c);
        return 0;
    case 0x80:  /* DELETE_LISTPAGE: GinMetaPageData (56), ndeleted */
        NEED(60);
        PUTS(o, "ndeleted: "); put_i64(o, MI32(56));
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Tablespace, ReplicationOrigin, LogicalMessage (tblspc.py, replorigin.py, logicalmsg.py)    */

static int desc_tblspc(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    uint32_t len;
    if (info == 0x00) {  /* CREATE: ts_id, ts_path (NUL-terminated) */
        NEED(4);
        put_u64(o, M32(0));
        PUTS(o, " \"");
        if (put_cstring(o, c, 4, &len))
            return FALLBACK;
        put_ch(o, '"');
    } else if (info == 0x10) {
        NEED(4);
        put_u64(o, M32(0));
    }
    return 0;
}

static int desc_replorigin(Out *o, const Ctx *c) {
    uint8_t info = c->r->info & 0xF0;
    if (info == 0x00) {  /* SET: remote_lsn 0, node_id 8, force 10 */
        NEED(11);
        PUTS(o, "set "); put_u64(o, M16(8));
        PUTS(o, "; lsn "); put_lsn(o, rd_u64(c->m, 0));
        PUTS(o, "; force: "); put_u64(o, M8(10));
    } else if (info == 0x10) {
        NEED(2);
        PUTS(o, "drop "); put_u64(o, M16(0));
    }
    return 0;
}

static int desc_logicalmsg(Out *o, const Ctx *c) {
    if ((c->r->info & 0xF0) != 0x00)
        return 0;
    /* dbId 0, transactional 4, prefix_size 8, message_size 16, message 24 */
    NEED(24);
    int transactional = M8(4) != 0;
    uint64_t prefix_size = rd_u64(c->m, 8), message_size = rd_u64(c->m, 16);
    if (c->major < 14) {
        if (transactional) PUTS(o, "transactional"); else PUTS(o, "nontransactional");
        PUTS(o, " message size "); put_u64(o, message_size);
        PUTS(o, " bytes");
        return 0;
    }
    if (prefix_size > c->mlen - 24 || message_size > c->mlen - 24 - prefix_size)
        return FALLBACK;
    uint64_t off = 24 + prefix_size;
    if (transactional) PUTS(o, "transactional"); else PUTS(o, "non-transactional");
    PUTS(o, ", prefix \"");
    uint32_t len;
    if (put_cstring(o, c, 24, &len))
        return FALLBACK;
    PUTS(o, "\"; payload (");
    put_u64(o, message_size);
    PUTS(o, " bytes): ");
    for (uint64_t i = 0; i < message_size; i++) {
        if (i) put_ch(o, ' ');
        put_hex(o, c->m[off + i], 2);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* dispatch                                                                                 */

/* rm_desc of the record, or FALLBACK (the output then holds a partial text to drop) */
static int describe_one(Out *o, const Ctx *c, TsCache *tc) {
    switch (c->r->rmid) {
    case 0: return desc_xlog(o, c, tc);
    case 1: return desc_xact(o, c, tc);
    case 2: return desc_smgr(o, c);
    case 3: return desc_clog(o, c);
    case 4: return desc_dbase(o, c);
    case 7: return desc_relmap(o, c);
    case 8: return desc_standby(o, c);
    case 9: return desc_heap2(o, c);
    case 10: return desc_heap(o, c);
    case 6: return desc_mxact(o, c);
    case 11: return desc_btree(o, c);
    case 12: return desc_hash(o, c);
    case 13: return desc_gin(o, c);
    case 14: return desc_gist(o, c);
    case 15: return desc_seq(o, c);
    case 16: return desc_spgist(o, c);
    case 17: return desc_brin(o, c);
    case 18: return desc_committs(o, c);
    case 5: return desc_tblspc(o, c);
    case 19: return desc_replorigin(o, c);
    case 20: return desc_generic(o, c);
    case 21: return desc_logicalmsg(o, c);
    }
    if (c->r->rmid > 21) {  /* custom (and unknown) resource managers: "rmid: N" */
        PUTS(o, "rmid: ");
        put_u64(o, c->r->rmid);
        return 0;
    }
    return FALLBACK;
}

/* ---------------------------------------------------------------------------------------- */
/* record type names: rm_identify() of each major (parse/rmgr identify_info), by info >> 4;  */
/* generated from the Python modules (every rmgr keys its names on info & 0xF0)             */

static const char *const NAMES_0[16] = {"CHECKPOINT_SHUTDOWN", "CHECKPOINT_ONLINE", "NOOP", "NEXTOID", "SWITCH", "BACKUP_END", "PARAMETER_CHANGE", "RESTORE_POINT", "FPW_CHANGE", "END_OF_RECOVERY", "FPI_FOR_HINT", "FPI", NULL, "OVERWRITE_CONTRECORD", NULL, NULL};
static const char *const NAMES_1[16] = {"COMMIT", "PREPARE", "ABORT", "COMMIT_PREPARED", "ABORT_PREPARED", "ASSIGNMENT", NULL, NULL, "COMMIT", "PREPARE", "ABORT", "COMMIT_PREPARED", "ABORT_PREPARED", "ASSIGNMENT", NULL, NULL};
static const char *const NAMES_2[16] = {NULL, "CREATE", "TRUNCATE", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_3[16] = {"ZEROPAGE", "TRUNCATE", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_4[16] = {"CREATE", "DROP", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_5[16] = {"ZERO_OFF_PAGE", "ZERO_MEM_PAGE", "CREATE_ID", "TRUNCATE_ID", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_6[16] = {"UPDATE", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_7[16] = {"LOCK", "RUNNING_XACTS", "INVALIDATIONS", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_8[16] = {"REWRITE", "CLEAN", "FREEZE_PAGE", "CLEANUP_INFO", "VISIBLE", "MULTI_INSERT", "LOCK_UPDATED", "NEW_CID", NULL, NULL, NULL, NULL, NULL, "MULTI_INSERT+INIT", NULL, NULL};
static const char *const NAMES_9[16] = {"INSERT", "DELETE", "UPDATE", "TRUNCATE", "HOT_UPDATE", "HEAP_CONFIRM", "LOCK", "INPLACE", "INSERT+INIT", NULL, "UPDATE+INIT", NULL, "HOT_UPDATE+INIT", NULL, NULL, NULL};
static const char *const NAMES_10[16] = {"INSERT_LEAF", "INSERT_UPPER", "INSERT_META", "SPLIT_L", "SPLIT_R", "INSERT_POST", "DEDUP", "DELETE", "UNLINK_PAGE", "UNLINK_PAGE_META", "NEWROOT", "MARK_PAGE_HALFDEAD", "VACUUM", "REUSE_PAGE", "META_CLEANUP", NULL};
static const char *const NAMES_11[16] = {"INIT_META_PAGE", "INIT_BITMAP_PAGE", "INSERT", "ADD_OVFL_PAGE", "SPLIT_ALLOCATE_PAGE", "SPLIT_PAGE", "SPLIT_COMPLETE", "MOVE_PAGE_CONTENTS", "SQUEEZE_PAGE", "DELETE", "SPLIT_CLEANUP", "UPDATE_META_PAGE", "VACUUM_ONE_PAGE", NULL, NULL, NULL};
static const char *const NAMES_12[16] = {NULL, "CREATE_PTREE", "INSERT", "SPLIT", "VACUUM_PAGE", "DELETE_PAGE", "UPDATE_META_PAGE", "INSERT_LISTPAGE", "DELETE_LISTPAGE", "VACUUM_DATA_LEAF_PAGE", NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_13[16] = {"PAGE_UPDATE", "DELETE", "PAGE_REUSE", "PAGE_SPLIT", NULL, NULL, "PAGE_DELETE", "ASSIGN_LSN", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_14[16] = {"LOG", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_15[16] = {NULL, "ADD_LEAF", "MOVE_LEAFS", "ADD_NODE", "SPLIT_TUPLE", "PICKSPLIT", "VACUUM_LEAF", "VACUUM_ROOT", "VACUUM_REDIRECT", NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_16[16] = {"CREATE_INDEX", "INSERT", "UPDATE", "SAMEPAGE_UPDATE", "REVMAP_EXTEND", "DESUMMARIZE", NULL, NULL, NULL, "INSERT+INIT", "UPDATE+INIT", NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_17[16] = {"ZEROPAGE", "TRUNCATE", "SETTS", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_18[16] = {"SET", "DROP", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_19[16] = {"Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic", "Generic"};
static const char *const NAMES_20[16] = {"MESSAGE", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_21[16] = {"COMMIT", "PREPARE", "ABORT", "COMMIT_PREPARED", "ABORT_PREPARED", "ASSIGNMENT", "INVALIDATION", NULL, "COMMIT", "PREPARE", "ABORT", "COMMIT_PREPARED", "ABORT_PREPARED", "ASSIGNMENT", "INVALIDATION", NULL};
static const char *const NAMES_22[16] = {"REWRITE", "PRUNE", "VACUUM", "FREEZE_PAGE", "VISIBLE", "MULTI_INSERT", "LOCK_UPDATED", "NEW_CID", NULL, NULL, NULL, NULL, NULL, "MULTI_INSERT+INIT", NULL, NULL};
static const char *const NAMES_23[16] = {"CREATE_FILE_COPY", "CREATE_WAL_LOG", "DROP", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
static const char *const NAMES_24[16] = {"CHECKPOINT_SHUTDOWN", "CHECKPOINT_ONLINE", "NOOP", "NEXTOID", "SWITCH", "BACKUP_END", "PARAMETER_CHANGE", "RESTORE_POINT", "FPW_CHANGE", "END_OF_RECOVERY", "FPI_FOR_HINT", "FPI", NULL, "OVERWRITE_CONTRECORD", "CHECKPOINT_REDO", NULL};
static const char *const NAMES_25[16] = {"REWRITE", "PRUNE_ON_ACCESS", "PRUNE_VACUUM_SCAN", "PRUNE_VACUUM_CLEANUP", "VISIBLE", "MULTI_INSERT", "LOCK_UPDATED", "NEW_CID", NULL, NULL, NULL, NULL, NULL, "MULTI_INSERT+INIT", NULL, NULL};
static const char *const *const NAMES[6][22] = {
    {NAMES_0, NAMES_1, NAMES_2, NAMES_3, NAMES_4, NAMES_4, NAMES_5, NAMES_6, NAMES_7, NAMES_8, NAMES_9, NAMES_10, NAMES_11, NAMES_12, NAMES_13, NAMES_14, NAMES_15, NAMES_16, NAMES_17, NAMES_18, NAMES_19, NAMES_20},  /* 13 */
    {NAMES_0, NAMES_21, NAMES_2, NAMES_3, NAMES_4, NAMES_4, NAMES_5, NAMES_6, NAMES_7, NAMES_22, NAMES_9, NAMES_10, NAMES_11, NAMES_12, NAMES_13, NAMES_14, NAMES_15, NAMES_16, NAMES_3, NAMES_18, NAMES_19, NAMES_20},  /* 14 */
    {NAMES_0, NAMES_21, NAMES_2, NAMES_3, NAMES_23, NAMES_4, NAMES_5, NAMES_6, NAMES_7, NAMES_22, NAMES_9, NAMES_10, NAMES_11, NAMES_12, NAMES_13, NAMES_14, NAMES_15, NAMES_16, NAMES_3, NAMES_18, NAMES_19, NAMES_20},  /* 15 */
    {NAMES_0, NAMES_21, NAMES_2, NAMES_3, NAMES_23, NAMES_4, NAMES_5, NAMES_6, NAMES_7, NAMES_22, NAMES_9, NAMES_10, NAMES_11, NAMES_12, NAMES_13, NAMES_14, NAMES_15, NAMES_16, NAMES_3, NAMES_18, NAMES_19, NAMES_20},  /* 16 */
    {NAMES_24, NAMES_21, NAMES_2, NAMES_3, NAMES_23, NAMES_4, NAMES_5, NAMES_6, NAMES_7, NAMES_25, NAMES_9, NAMES_10, NAMES_11, NAMES_12, NAMES_13, NAMES_14, NAMES_15, NAMES_16, NAMES_3, NAMES_18, NAMES_19, NAMES_20},  /* 17 */
    {NAMES_24, NAMES_21, NAMES_2, NAMES_3, NAMES_23, NAMES_4, NAMES_5, NAMES_6, NAMES_7, NAMES_25, NAMES_9, NAMES_10, NAMES_11, NAMES_12, NAMES_13, NAMES_14, NAMES_15, NAMES_16, NAMES_3, NAMES_18, NAMES_19, NAMES_20},  /* 18 */
};

static const char *const RMGR_NAMES[22] = {
    "XLOG", "Transaction", "Storage", "CLOG", "Database", "Tablespace", "MultiXact", "RelMap",
    "Standby", "Heap2", "Heap", "Btree", "Hash", "Gin", "Gist", "Sequence", "SPGist", "BRIN",
    "CommitTs", "ReplicationOrigin", "Generic", "LogicalMessage"};

/* record_type(): the name, or "UNKNOWN (%x)" of the info's high bits */
static void put_record_type(Out *o, int major, uint8_t rmid, uint8_t info) {
    const char *name = NULL;
    if (rmid <= 21 && major >= 13 && major <= 18)
        name = NAMES[major - 13][rmid][info >> 4];
    if (name != NULL) {
        put_str(o, name);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    PUTS(o, "UNKNOWN (");
    if (info & 0xF0)
        put_ch(o, hex[info >> 4]);
    put_ch(o, '0');
    put_ch(o, ')');
}

/* rmgr_name() padded as "%-11s" */
static void put_rmgr_name(Out *o, uint8_t rmid) {
    size_t n;
    if (rmid <= 21) {
        const char *s = RMGR_NAMES[rmid];
        n = strlen(s);
        put(o, s, n);
    } else {
        char buf[16];
        if (rmid >= 128)
            n = (size_t)snprintf(buf, sizeof buf, "custom%03u", rmid);
        else
            n = (size_t)snprintf(buf, sizeof buf, "unknown%u", rmid);
        put(o, buf, n);
    }
    for (; n < 11; n++)
        put_ch(o, ' ');
}

/* ---------------------------------------------------------------------------------------- */
/* the batch functions                                                                      */

typedef struct {
    Py_buffer arena, offs;
    Py_ssize_t n;
} Batch;

static void batch_release(Batch *b) {
    if (b->arena.obj) PyBuffer_Release(&b->arena);
    if (b->offs.obj) PyBuffer_Release(&b->offs);
}

static int batch_check(Batch *b) {
    if (b->n < 0 || (size_t)b->offs.len < 8 * (size_t)b->n) {
        PyErr_SetString(PyExc_ValueError, "rec_offsets holds fewer than n uint64");
        return -1;
    }
    return 0;
}

/* record i of the arena: its bytes and length, or NULL when it does not lie in the arena */
static const uint8_t *batch_record(const Batch *b, Py_ssize_t i, uint32_t *len) {
    uint64_t off = walrec_u64((const uint8_t *)b->offs.buf + 8 * (size_t)i);
    uint64_t alen = (uint64_t)b->arena.len;
    if (off > alen || alen - off < WALREC_SZ_HDR)
        return NULL;
    const uint8_t *d = (const uint8_t *)b->arena.buf + off;
    uint32_t tot = walrec_u32(d);
    if (tot < WALREC_SZ_HDR || tot > alen - off)
        return NULL;
    *len = tot;
    return d;
}

/* (offsets bytes, data bytes, fallback bytes) of the texts in o; frees o */
static PyObject *texts_result(Out *o, int32_t *offsets, uint8_t *fallback, Py_ssize_t n) {
    PyObject *res = NULL;
    if (o->oom || offsets == NULL || fallback == NULL) {
        PyErr_NoMemory();
    } else if (o->len > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "descriptions of the batch exceed 2 GB");
    } else {
        res = Py_BuildValue("(y#y#y#)", (const char *)offsets, (Py_ssize_t)(4 * (n + 1)),
                            o->p ? o->p : "", (Py_ssize_t)o->len,
                            (const char *)fallback, n);
    }
    free(o->p);
    free(offsets);
    free(fallback);
    return res;
}

static PyObject *describe_batch(PyObject *self, PyObject *args) {
    Batch b = {0};
    int major;
    unsigned int blcksz;
    if (!PyArg_ParseTuple(args, "y*y*niI", &b.arena, &b.offs, &b.n, &major, &blcksz))
        return NULL;
    if (batch_check(&b)) {
        batch_release(&b);
        return NULL;
    }
    Py_ssize_t n = b.n;
    Out o = {0};
    int32_t *offsets = malloc(4 * ((size_t)n + 1));
    uint8_t *fallback = malloc((size_t)n + 1);
    if (offsets != NULL && fallback != NULL && out_reserve(&o, 64 * (size_t)n + 64) == 0) {
        Py_BEGIN_ALLOW_THREADS
        TsCache tc = {0};
        WalRec r;
        for (Py_ssize_t i = 0; i < n && !o.oom; i++) {
            size_t start = o.len;
            offsets[i] = (int32_t)start;
            uint32_t len;
            const uint8_t *d = batch_record(&b, i, &len);
            int fb = 1;
            if (d != NULL && major >= 13 && major <= 18
                    && walrec_decode(d, len, major, blcksz, &r) == WALREC_OK) {
                Ctx c = {d, &r, d + r.main_off, r.main_len, major, &tc};
                fb = describe_one(&o, &c, &tc);
            }
            if (fb)
                o.len = start;
            fallback[i] = (uint8_t)(fb != 0);
        }
        offsets[n] = (int32_t)o.len;
        Py_END_ALLOW_THREADS
    }
    batch_release(&b);
    return texts_result(&o, offsets, fallback, n);
}

static PyObject *identify_batch(PyObject *self, PyObject *args) {
    Batch b = {0};
    int major;
    if (!PyArg_ParseTuple(args, "y*y*ni", &b.arena, &b.offs, &b.n, &major))
        return NULL;
    if (batch_check(&b)) {
        batch_release(&b);
        return NULL;
    }
    Py_ssize_t n = b.n;
    Out o = {0};
    int32_t *offsets = malloc(4 * ((size_t)n + 1));
    uint8_t *fallback = malloc((size_t)n + 1);
    if (offsets != NULL && fallback != NULL) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n && !o.oom; i++) {
            offsets[i] = (int32_t)o.len;
            uint32_t len;
            const uint8_t *d = batch_record(&b, i, &len);
            int fb = d == NULL || major < 13 || major > 18;
            if (!fb)
                put_record_type(&o, major, d[17], d[16]);
            fallback[i] = (uint8_t)fb;
        }
        offsets[n] = (int32_t)o.len;
        Py_END_ALLOW_THREADS
    }
    batch_release(&b);
    return texts_result(&o, offsets, fallback, n);
}

/* _image_detail() */
static void put_image_detail(Out *o, const WalBlock *bk, int major, uint32_t blcksz) {
    static const char *const methods[4] = {"", "pglz", "lz4", "zstd"};
    if (bk->apply_image) PUTS(o, " (FPW)"); else PUTS(o, " (FPW for WAL verification)");
    PUTS(o, "; hole: offset: "); put_u64(o, bk->hole_offset);
    PUTS(o, ", length: "); put_u64(o, bk->hole_length);
    if (bk->compression != WALREC_NONE) {
        PUTS(o, ", compression saved: ");
        put_i64(o, (int64_t)blcksz - bk->hole_length - bk->image_len);
        if (major >= 15) {
            PUTS(o, ", method: ");
            put_str(o, methods[bk->compression & 3]);
        }
    }
}

static void put_fork(Out *o, uint8_t fork) {
    if (fork < 4) put_str(o, FORK_NAMES[fork]); else put_u64(o, fork);
}

static PyObject *waldump_lines(PyObject *self, PyObject *args) {
    Batch b = {0};
    Py_buffer lsns = {0}, doffs = {0}, ddata = {0};
    int major, bkp;
    unsigned int blcksz;
    if (!PyArg_ParseTuple(args, "y*y*y*niIpy*y*", &b.arena, &b.offs, &lsns, &b.n, &major,
                          &blcksz, &bkp, &doffs, &ddata))
        return NULL;
    PyObject *res = NULL;
    Py_ssize_t n = b.n, bad = -1;
    Out o = {0};
    if (batch_check(&b))
        goto done;
    if ((size_t)lsns.len < 8 * (size_t)n || (size_t)doffs.len < 4 * ((size_t)n + 1)) {
        PyErr_SetString(PyExc_ValueError, "lsns or desc_offsets shorter than n records");
        goto done;
    }
    /* a line is about 160 bytes and its description; -b lines add about 80 per block */
    if (out_reserve(&o, (size_t)ddata.len + (size_t)n * (bkp ? 240 : 180) + 64)) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    WalRec r;
    const uint8_t *lp = lsns.buf, *dp = doffs.buf;
    const char *text = ddata.buf;
    for (Py_ssize_t i = 0; i < n && !o.oom; i++) {
        uint32_t len;
        const uint8_t *d = batch_record(&b, i, &len);
        int32_t d0 = (int32_t)walrec_u32(dp + 4 * i), d1 = (int32_t)walrec_u32(dp + 4 * i + 4);
        if (d == NULL || walrec_decode(d, len, major, blcksz, &r) != WALREC_OK
                || d0 < 0 || d1 < d0 || d1 > ddata.len) {
            bad = i;
            break;
        }
        uint64_t lsn = walrec_u64(lp + 8 * i);
        PUTS(&o, "rmgr: ");
        put_rmgr_name(&o, r.rmid);
        PUTS(&o, " len (rec/tot): ");
        put_u64_w(&o, r.tot_len - r.fpi_len, 6);
        put_ch(&o, '/');
        put_u64_w(&o, r.tot_len, 6);
        PUTS(&o, ", tx: ");
        put_u64_w(&o, r.xid, 10);
        PUTS(&o, ", lsn: ");
        put_lsn08(&o, lsn);
        PUTS(&o, ", prev ");
        put_lsn08(&o, r.prev);
        PUTS(&o, ", desc: ");
        put_record_type(&o, major, r.rmid, r.info);
        put_ch(&o, ' ');
        put(&o, text + d0, (size_t)(d1 - d0));
        for (int k = 0; k < r.nblocks; k++) {
            const WalBlock *bk = &r.blocks[k];
            uint8_t fork = bk->fork_flags & WALREC_FORK_MASK;
            if (bkp) {
                PUTS(&o, "\n\tblkref #");
            } else {
                PUTS(&o, ", blkref #");
            }
            put_u64(&o, bk->id);
            PUTS(&o, ": rel ");
            put_u64(&o, bk->spc); put_ch(&o, '/');
            put_u64(&o, bk->db); put_ch(&o, '/');
            put_u64(&o, bk->rel);
            if (bkp || fork != 0) {
                PUTS(&o, " fork ");
                put_fork(&o, fork);
            }
            PUTS(&o, " blk ");
            put_u64(&o, bk->blk);
            if (bk->has_image) {
                if (bkp)
                    put_image_detail(&o, bk, major, blcksz);
                else if (bk->apply_image)
                    PUTS(&o, " FPW");
                else
                    PUTS(&o, " FPW for WAL verification");
            }
        }
        put_ch(&o, '\n');
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0)
        PyErr_Format(PyExc_ValueError, "record %zd of the batch does not decode", bad);
    else if (o.oom)
        PyErr_NoMemory();
    else
        res = PyBytes_FromStringAndSize(o.p ? o.p : "", (Py_ssize_t)o.len);
done:
    free(o.p);
    batch_release(&b);
    PyBuffer_Release(&lsns);
    PyBuffer_Release(&doffs);
    PyBuffer_Release(&ddata);
    return res;
}

/* splice(desc_offsets, desc_data, n, indexes, texts): the texts (bytes) put into the empty
   slots `indexes` (ascending) of a describe_batch result */
static PyObject *splice(PyObject *self, PyObject *args) {
    Py_buffer doffs = {0}, ddata = {0};
    Py_ssize_t n;
    PyObject *indexes, *texts;
    if (!PyArg_ParseTuple(args, "y*y*nOO", &doffs, &ddata, &n, &indexes, &texts))
        return NULL;
    PyObject *res = NULL, *idx = NULL, *txt = NULL;
    Out o = {0};
    int32_t *offsets = NULL;
    if (n < 0 || (size_t)doffs.len < 4 * ((size_t)n + 1)) {
        PyErr_SetString(PyExc_ValueError, "desc_offsets shorter than n + 1");
        goto done;
    }
    idx = PySequence_Fast(indexes, "indexes must be a sequence");
    txt = idx ? PySequence_Fast(texts, "texts must be a sequence") : NULL;
    if (txt == NULL)
        goto done;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(idx);
    if (PySequence_Fast_GET_SIZE(txt) != k) {
        PyErr_SetString(PyExc_ValueError, "indexes and texts differ in length");
        goto done;
    }
    offsets = malloc(4 * ((size_t)n + 1));
    if (offsets == NULL || out_reserve(&o, (size_t)ddata.len + 64)) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *dp = doffs.buf;
    const char *data = ddata.buf;
    Py_ssize_t next = 0, want = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (want < i && next < k) {
            want = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(idx, next));
            if (want == -1 && PyErr_Occurred())
                goto done;
        }
        int32_t d0 = (int32_t)walrec_u32(dp + 4 * i), d1 = (int32_t)walrec_u32(dp + 4 * i + 4);
        if (d0 < 0 || d1 < d0 || d1 > ddata.len) {
            PyErr_SetString(PyExc_ValueError, "desc_offsets out of order");
            goto done;
        }
        offsets[i] = (int32_t)o.len;
        put(&o, data + d0, (size_t)(d1 - d0));
        if (i == want) {
            char *s;
            Py_ssize_t sl;
            if (PyBytes_AsStringAndSize(PySequence_Fast_GET_ITEM(txt, next), &s, &sl) < 0)
                goto done;
            put(&o, s, (size_t)sl);
            next++;
        }
    }
    offsets[n] = (int32_t)o.len;
    if (o.oom) {
        PyErr_NoMemory();
    } else if (o.len > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "descriptions of the batch exceed 2 GB");
    } else {
        res = Py_BuildValue("(y#y#)", (const char *)offsets, (Py_ssize_t)(4 * (n + 1)),
                            o.p ? o.p : "", (Py_ssize_t)o.len);
    }
done:
    Py_XDECREF(idx);
    Py_XDECREF(txt);
    free(offsets);
    free(o.p);
    PyBuffer_Release(&doffs);
    PyBuffer_Release(&ddata);
    return res;
}

static PyMethodDef methods[] = {
    {"describe_batch", describe_batch, METH_VARARGS,
     "describe_batch(arena, rec_offsets, n, major, blcksz) -> (offsets, data, fallback)"},
    {"identify_batch", identify_batch, METH_VARARGS,
     "identify_batch(arena, rec_offsets, n, major) -> (offsets, data, fallback)"},
    {"waldump_lines", waldump_lines, METH_VARARGS,
     "waldump_lines(arena, rec_offsets, lsns, n, major, blcksz, bkp_details, desc_offsets, "
     "desc_data) -> bytes"},
    {"splice", splice, METH_VARARGS,
     "splice(desc_offsets, desc_data, n, indexes, texts) -> (offsets, data)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_waldesc", NULL, -1, methods};

PyMODINIT_FUNC PyInit__waldesc(void) { return PyModule_Create(&module); }
