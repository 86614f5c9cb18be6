/*
 * _walscan: the reader's record walk over one loaded segment, in C.
 *
 * It does what the Python reader (reader.py) does for an ordinary record, and nothing else:
 * page header checks (XLogReaderValidatePageHeader), record header checks
 * (ValidXLogRecordHeader, non-random mode: xl_prev must equal the previous record),
 * assembly across pages of the same segment, CRC-32C (ValidXLogRecord) and the consistency
 * of the fragment headers (DecodeXLogRecord).  It builds no record objects: it counts.
 *
 * Anything out of the ordinary makes it stop *before* that record and hand the position
 * back: a record crossing into the next segment, XLOG_SWITCH, a custom resource manager, an
 * overwritten continuation, the caller's limits, and every kind of damage.  The Python reader
 * then reads that record itself, with its own checks and PostgreSQL's error messages.  So
 * this walk only has to be at least as strict as the Python one, never more lenient: it
 * accepts nothing the Python reader would reject.
 *
 * scan(buf, seg_base, nxt, prev, start, until, end, latest_page, latest_tli,
 *      blcksz, seg_size, magic, sysid, major, max_builtin)
 *   -> (records counted at or after start, nxt, prev, latest_page, latest_tli)
 * Builder().decode(same arguments, max_records, max_arena) walks the same way and appends
 * each record to column buffers (parse/batch.py's WalBatch).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "walrec.h"
#include "pgtime.h"

#define SZ_REC 24          /* SizeOfXLogRecord */
#define CRC_OFF 20         /* offsetof(XLogRecord, xl_crc) */
#define SZ_SHORT_PHD 24
#define SZ_LONG_PHD 40
#define XLP_FIRST_IS_CONTRECORD 0x0001
#define XLP_LONG_HEADER 0x0002
#define XLP_FIRST_IS_OVERWRITE_CONTRECORD 0x0008
#define XLP_ALL_FLAGS 0x000F
#define XLOG_SWITCH 0x40
#define MAX_RECORD_LEN (1020u * 1024u * 1024u)

/* ---- CRC-32C (Castagnoli, reflected), as pg_crc32c: start ~0, end ~crc ---- */
static uint32_t crc_table[8][256];
static int have_sse42;


static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
              crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The crc32 instruction takes 3 cycles but can start one every cycle: three independent CRCs
 * over three equal blocks run about three times as fast as one over all of it. The register
 * is linear in GF(2), so CRC(A || B) = shift_|B|(CRC(A)) ^ CRC_0(B), where shift_n feeds n
 * zero bytes; shift_n is a 32x32 bit matrix, applied as four 256-entry tables (made at module
 * init from the images of the 32 single bits). Blocks of 8 kB (full-page images) and 256 B. */
#define CRC_LONG 8192
#define CRC_SHORT 256
static uint32_t shift_long[4][256], shift_short[4][256];

__attribute__((target("sse4.2")))
static uint32_t crc_zeros(uint32_t crc, size_t n) {
    uint64_t c = crc;
    for (size_t i = 0; i < n; i += 8)
        c = __builtin_ia32_crc32di(c, 0);
    return (uint32_t)c;
}

static void shift_init(uint32_t t[4][256], size_t n) {
    uint32_t bit[32];
    for (int b = 0; b < 32; b++)
        bit[b] = crc_zeros(1u << b, n);
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t x = 0;
            for (int j = 0; j < 8; j++)
                if (v >> j & 1)
                    x ^= bit[8 * k + j];
            t[k][v] = x;
        }
}

static inline uint32_t shift_apply(uint32_t t[4][256], uint32_t crc) {
    return t[0][crc & 0xFF] ^ t[1][(crc >> 8) & 0xFF] ^ t[2][(crc >> 16) & 0xFF] ^ t[3][crc >> 24];
}

__attribute__((target("sse4.2")))
static const uint8_t *crc_hw3(uint64_t *c0p, const uint8_t *p, size_t *np, size_t blk,
                              uint32_t t[4][256]) {
    uint64_t c0 = *c0p;
    size_t n = *np;
    while (n >= 3 * blk) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *end = p + blk;
        do {
            uint64_t a, b, c;
            memcpy(&a, p, 8);
            memcpy(&b, p + blk, 8);
            memcpy(&c, p + 2 * blk, 8);
            c0 = __builtin_ia32_crc32di(c0, a);
            c1 = __builtin_ia32_crc32di(c1, b);
            c2 = __builtin_ia32_crc32di(c2, c);
            p += 8;
        } while (p < end);
        c0 = shift_apply(t, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = shift_apply(t, (uint32_t)c0) ^ (uint32_t)c2;
        p += 2 * blk;
        n -= 3 * blk;
    }
    *c0p = c0;
    *np = n;
    return p;
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    p = crc_hw3(&c, p, &n, CRC_LONG, shift_long);
    p = crc_hw3(&c, p, &n, CRC_SHORT, shift_short);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n--)
        crc = __builtin_ia32_crc32qi(crc, *p++);
    return crc;
}
#endif

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2");
    if (have_sse42) {
        shift_init(shift_long, CRC_LONG);
        shift_init(shift_short, CRC_SHORT);
    }
#endif
}

static inline uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (have_sse42)
        return crc_hw(crc, p, n);
#endif
    return crc_sw(crc, p, n);
}

/* ---- little-endian field reads (WAL is read as little-endian everywhere in xlogtools) ---- */
static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

typedef struct {
    const uint8_t *buf;
    uint64_t len;         /* bytes of the segment that are there */
    uint64_t seg_base;    /* LSN of buf[0] */
    uint32_t blcksz;
    uint32_t seg_size;
    uint16_t magic;
    uint64_t sysid;
    int major;
    int max_builtin;
    uint64_t latest_page;
    uint32_t latest_tli;
} Walk;

/* The header of the page at pageptr, if it is one the Python reader accepts; its size, or 0. */
static uint32_t page_ok(Walk *w, uint64_t pageptr, uint16_t *info_out, uint32_t *rem_out) {
    if (pageptr < w->seg_base)
        return 0;
    uint64_t off = pageptr - w->seg_base;
    if (off + w->blcksz > w->len)
        return 0;
    const uint8_t *p = w->buf + off;
    uint16_t info = rd16(p + 2);
    uint32_t tli = rd32(p + 4);
    uint32_t hdr;
    if (rd16(p) != w->magic || (info & ~XLP_ALL_FLAGS))
        return 0;
    if (info & XLP_LONG_HEADER) {
        if (rd64(p + 24) != w->sysid || rd32(p + 32) != w->seg_size || rd32(p + 36) != w->blcksz)
            return 0;
        hdr = SZ_LONG_PHD;
    } else if (off == 0) {
        return 0;
    } else {
        hdr = SZ_SHORT_PHD;
    }
    if (rd64(p + 8) != pageptr)
        return 0;
    if (pageptr > w->latest_page) {
        if (tli < w->latest_tli)
            return 0;
        w->latest_page = pageptr;
        w->latest_tli = tli;
    }
    *info_out = info;
    *rem_out = rd32(p + 16);
    return hdr;
}

/* The outcome of reading one ordinary record: where it starts, its assembled bytes (in the
 * segment, or gathered into *tmp), where the next one starts, and its decoded fragments. */
typedef struct {
    uint64_t rp;          /* the record's LSN */
    uint64_t next;        /* where the next record starts */
    const uint8_t *rec;   /* the record's bytes, header included */
    uint32_t tot_len;
    WalRec r;
} Step;

/* Read the ordinary record at *nxt (as scan's loop did inline): 1 when it is one, with s
 * filled; 0 to stop *before* it (anything unusual, damage, the limits), the state untouched. */
static inline int walk_one(Walk *w, uint64_t nxt, uint64_t prev, uint64_t until, uint64_t end,
                           uint8_t **tmp, size_t *tmp_cap, Step *s) {
    uint32_t blcksz = w->blcksz;
    uint64_t rp = nxt;
    uint64_t page_off = rp % blcksz;
    if (rp >= until || rp < w->seg_base || rp - w->seg_base >= w->len)
        return 0;
    if (page_off == 0) {
        /* a record at a page start follows the page header; the page must not begin with a
           continuation */
        uint16_t info;
        uint32_t rem;
        uint32_t hdr = page_ok(w, rp, &info, &rem);
        if (hdr == 0 || (info & XLP_FIRST_IS_CONTRECORD))
            return 0;
        rp += hdr;
        page_off = hdr;
    }
    uint64_t off = rp - w->seg_base;
    if (off + 8 > w->len || rp + SZ_REC > end)
        return 0;
    uint32_t tot_len = rd32(w->buf + off);
    if (tot_len < SZ_REC || tot_len > MAX_RECORD_LEN)
        return 0;
    const uint8_t *rec;
    uint64_t next;
    uint64_t rec_last; /* LSN just past the record's last byte */
    if (page_off + tot_len <= blcksz) {
        if (off + tot_len > w->len)
            return 0;
        rec = w->buf + off;
        next = rp + ((tot_len + 7) & ~7u);
        rec_last = rp + tot_len;
    } else {
        /* gather the record from the following pages of this segment */
        if (*tmp_cap < tot_len) {
            uint8_t *t = realloc(*tmp, tot_len);
            if (t == NULL)
                return 0;
            *tmp = t;
            *tmp_cap = tot_len;
        }
        uint32_t got = (uint32_t)(blcksz - page_off);
        memcpy(*tmp, w->buf + off, got);
        uint64_t pageptr = rp - page_off;
        uint32_t hdr = 0, rem = 0;
        while (got < tot_len) {
            uint16_t info;
            pageptr += blcksz;
            if (pageptr - w->seg_base >= w->seg_size)
                return 0;
            hdr = page_ok(w, pageptr, &info, &rem);
            if (hdr == 0 || (info & XLP_FIRST_IS_OVERWRITE_CONTRECORD) ||
                !(info & XLP_FIRST_IS_CONTRECORD) || rem == 0 || tot_len != rem + got)
                return 0;
            uint32_t n = rem < blcksz - hdr ? rem : blcksz - hdr;
            if (pageptr + hdr + n > end)
                return 0;
            memcpy(*tmp + got, w->buf + (pageptr - w->seg_base) + hdr, n);
            got += n;
        }
        rec = *tmp;
        next = pageptr + hdr + ((rem + 7) & ~7u);
        rec_last = pageptr + hdr + (rem < blcksz - hdr ? rem : blcksz - hdr);
    }
    if (rec_last > end)
        return 0;
    uint8_t info = rec[16], rmid = rec[17];
    if (rd64(rec + 8) != prev || (int)rmid > w->max_builtin ||
        (rmid == 0 && (info & 0xF0) == XLOG_SWITCH))
        return 0;
    uint32_t c = crc_update(0xFFFFFFFFu, rec + SZ_REC, tot_len - SZ_REC);
    c = crc_update(c, rec, CRC_OFF);
    /* DecodeXLogRecord's checks of the fragment headers (walrec.h) */
    if ((c ^ 0xFFFFFFFFu) != rd32(rec + CRC_OFF) ||
        walrec_decode(rec, tot_len, w->major, blcksz, &s->r) != WALREC_OK)
        return 0;
    s->rp = rp;
    s->next = next;
    s->rec = rec;
    s->tot_len = tot_len;
    return 1;
}

#define WALK_ARGS "y*KKKKKKKIIIIKii"

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned long long seg_base, nxt, prev, start, until, end, latest_page, sysid;
    unsigned int latest_tli, blcksz, seg_size, magic;
    int major, max_builtin;
    if (!PyArg_ParseTuple(args, WALK_ARGS, &view, &seg_base, &nxt, &prev, &start,
                          &until, &end, &latest_page, &latest_tli, &blcksz, &seg_size, &magic,
                          &sysid, &major, &max_builtin))
        return NULL;
    Walk w = {view.buf, (uint64_t)view.len, seg_base, blcksz, seg_size, (uint16_t)magic, sysid,
              major, max_builtin, latest_page, latest_tli};
    uint64_t count = 0;
    uint8_t *tmp = NULL;
    size_t tmp_cap = 0;
    int little = 1;
    int ok = *(uint8_t *)&little == 1 && blcksz >= 1024 && seg_size >= blcksz;
    Step s;

    Py_BEGIN_ALLOW_THREADS
    while (ok && walk_one(&w, nxt, prev, until, end, &tmp, &tmp_cap, &s)) {
        if (s.rp >= start)
            count++;
        prev = s.rp;
        nxt = s.next;
    }
    Py_END_ALLOW_THREADS

    free(tmp);
    PyBuffer_Release(&view);
    return Py_BuildValue("KKKKI", (unsigned long long)count, nxt, prev,
                         (unsigned long long)w.latest_page, (unsigned int)w.latest_tli);
}

/* ---- Builder: the columns of a batch of decoded records (parse/batch.py's WalBatch) ----
 *
 * decode() walks like scan() and appends every record at or after `start` to growable
 * column buffers: the header fields, the fragments' offsets, the block references (child
 * columns with list offsets) and a copy of the assembled record (header included) in the
 * arena, each record 8-aligned.  add() appends one record the Python reader read (the
 * unusual ones scan stops before).  take() hands the columns out as bytes and starts over. */
/* A growable buffer: malloc'd, or (owner set) the storage of a bytes object being filled,
 * which is then handed out as it is instead of copied. */
typedef struct { uint8_t *p; size_t len, cap; PyObject *owner; } Buf;

static int buf_grow(Buf *b, size_t more) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    if (b->owner != NULL) {
        if (_PyBytes_Resize(&b->owner, (Py_ssize_t)cap) < 0)
            return -1;  /* (the bytes object is freed, owner NULL) */
        b->p = (uint8_t *)PyBytes_AS_STRING(b->owner);
        b->cap = cap;
        return 0;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int buf_reserve(Buf *b, size_t more) {
    if (b->len + more <= b->cap)
        return 0;
    return buf_grow(b, more);
}

#define PUT(b, type, v) do { type v_ = (type)(v); memcpy((b)->p + (b)->len, &v_, sizeof v_); \
                             (b)->len += sizeof v_; } while (0)

/* Record columns, then block columns, then the arena: the order of COLUMN_NAMES. */
enum {
    C_LSN, C_END, C_PREV, C_XID, C_TOPLEVEL_XID, C_INFO, C_RMID, C_TOT_LEN, C_FPI_LEN,
    C_ORIGIN, C_MAIN_OFF, C_MAIN_LEN, C_REC_OFF, C_BLOCK_OFFSETS,
    B_ID, B_FORK_FLAGS, B_SPC, B_DB, B_REL, B_BLK, B_HAS_IMAGE, B_APPLY_IMAGE, B_COMPRESSION,
    B_IMAGE_LEN, B_HOLE_OFFSET, B_HOLE_LENGTH, B_BIMG_INFO, B_DATA_LEN, B_IMAGE_OFF,
    B_DATA_OFF, C_ARENA, N_COLUMNS
};
static const char *COLUMN_NAMES[N_COLUMNS] = {
    "lsn", "end", "prev", "xid", "toplevel_xid", "info", "rmid", "tot_len", "fpi_len",
    "origin", "main_off", "main_len", "rec_off", "block_offsets",
    "block_id", "fork_flags", "spc", "db", "rel", "blk", "has_image", "apply_image",
    "compression", "image_len", "hole_offset", "hole_length", "bimg_info", "data_len",
    "image_off", "data_off", "arena"};
typedef struct {
    PyObject_HEAD
    Buf col[N_COLUMNS];
    uint64_t n;        /* records */
    uint64_t nblocks;  /* block references */
} Builder;

static void builder_reset(Builder *b) {
    for (int i = 0; i < N_COLUMNS; i++)
        b->col[i].len = 0;
    b->n = b->nblocks = 0;
    int32_t zero = 0;  /* block_offsets starts with 0 (an Arrow list's offsets) */
    if (buf_reserve(&b->col[C_BLOCK_OFFSETS], 4) == 0)
        PUT(&b->col[C_BLOCK_OFFSETS], int32_t, zero);
}

/* Append one record: -1 when memory ran out (nothing appended), else 0. */
static int builder_append(Builder *b, uint64_t lsn, uint64_t end, const uint8_t *rec,
                          const WalRec *r) {
    uint32_t len = r->tot_len;
    size_t padded = ((size_t)len + 7) & ~(size_t)7;
    for (int i = C_LSN; i <= C_REC_OFF; i++)
        if (buf_reserve(&b->col[i], 8))
            return -1;
    if (buf_reserve(&b->col[C_BLOCK_OFFSETS], 4) || buf_reserve(&b->col[C_ARENA], padded))
        return -1;
    for (int i = B_ID; i <= B_DATA_OFF; i++)
        if (buf_reserve(&b->col[i], 4 * (size_t)r->nblocks))
            return -1;
    if (b->nblocks + r->nblocks > INT32_MAX)
        return -1;
    uint64_t rec_off = b->col[C_ARENA].len;
    PUT(&b->col[C_LSN], uint64_t, lsn);
    PUT(&b->col[C_END], uint64_t, end);
    PUT(&b->col[C_PREV], uint64_t, r->prev);
    PUT(&b->col[C_XID], uint32_t, r->xid);
    PUT(&b->col[C_TOPLEVEL_XID], uint32_t, r->toplevel_xid);
    PUT(&b->col[C_INFO], uint8_t, r->info);
    PUT(&b->col[C_RMID], uint8_t, r->rmid);
    PUT(&b->col[C_TOT_LEN], uint32_t, len);
    PUT(&b->col[C_FPI_LEN], uint32_t, r->fpi_len);
    PUT(&b->col[C_ORIGIN], uint16_t, r->origin);
    PUT(&b->col[C_MAIN_OFF], uint32_t, r->main_off);
    PUT(&b->col[C_MAIN_LEN], uint32_t, r->main_len);
    PUT(&b->col[C_REC_OFF], uint64_t, rec_off);
    for (int i = 0; i < r->nblocks; i++) {
        const WalBlock *k = &r->blocks[i];
        PUT(&b->col[B_ID], uint8_t, k->id);
        PUT(&b->col[B_FORK_FLAGS], uint8_t, k->fork_flags);
        PUT(&b->col[B_SPC], uint32_t, k->spc);
        PUT(&b->col[B_DB], uint32_t, k->db);
        PUT(&b->col[B_REL], uint32_t, k->rel);
        PUT(&b->col[B_BLK], uint32_t, k->blk);
        PUT(&b->col[B_HAS_IMAGE], uint8_t, k->has_image);
        PUT(&b->col[B_APPLY_IMAGE], uint8_t, k->apply_image);
        PUT(&b->col[B_COMPRESSION], uint8_t, k->compression);
        PUT(&b->col[B_IMAGE_LEN], uint32_t, k->image_len);
        PUT(&b->col[B_HOLE_OFFSET], uint16_t, k->hole_offset);
        PUT(&b->col[B_HOLE_LENGTH], uint16_t, k->hole_length);
        PUT(&b->col[B_BIMG_INFO], uint8_t, k->bimg_info);
        PUT(&b->col[B_DATA_LEN], uint32_t, k->data_len);
        PUT(&b->col[B_IMAGE_OFF], uint32_t, k->has_image ? k->image_off : 0);
        PUT(&b->col[B_DATA_OFF], uint32_t, k->data_len ? k->data_off : 0);
    }
    b->nblocks += r->nblocks;
    PUT(&b->col[C_BLOCK_OFFSETS], int32_t, (int32_t)b->nblocks);
    Buf *a = &b->col[C_ARENA];
    memcpy(a->p + a->len, rec, len);
    memset(a->p + a->len + len, 0, padded - len);
    a->len += padded;
    b->n++;
    return 0;
}

static PyObject *builder_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Builder *b = (Builder *)type->tp_alloc(type, 0);
    if (b == NULL)
        return NULL;
    builder_reset(b);
    if (b->col[C_BLOCK_OFFSETS].len != 4) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    return (PyObject *)b;
}

static void builder_dealloc(Builder *b) {
    for (int i = 0; i < N_COLUMNS; i++)
        free(b->col[i].p);
    Py_TYPE(b)->tp_free((PyObject *)b);
}

/* decode(buf, seg_base, nxt, prev, start, until, end, latest_page, latest_tli, blcksz,
 *        seg_size, magic, sysid, major, max_builtin, max_records, max_arena[, only_rmgr])
 *   -> (records appended, nxt, prev, latest_page, latest_tli, records walked from start)
 * scan() that appends; it also stops (resumably: nxt and prev say where) once the builder
 * holds max_records records or max_arena arena bytes. only_rmgr >= 0: every record is walked
 * and checked as before, but only those of that resource manager are appended. */
static PyObject *builder_decode(Builder *self, PyObject *args) {
    Py_buffer view;
    unsigned long long seg_base, nxt, prev, start, until, end, latest_page, sysid;
    unsigned long long max_records, max_arena;
    unsigned int latest_tli, blcksz, seg_size, magic;
    int major, max_builtin, only_rmgr = -1;
    if (!PyArg_ParseTuple(args, WALK_ARGS "KK|i", &view, &seg_base, &nxt, &prev, &start,
                          &until, &end, &latest_page, &latest_tli, &blcksz, &seg_size, &magic,
                          &sysid, &major, &max_builtin, &max_records, &max_arena, &only_rmgr))
        return NULL;
    Walk w = {view.buf, (uint64_t)view.len, seg_base, blcksz, seg_size, (uint16_t)magic, sysid,
              major, max_builtin, latest_page, latest_tli};
    uint64_t count = 0, walked = 0;
    uint8_t *tmp = NULL;
    size_t tmp_cap = 0;
    int little = 1;
    int ok = *(uint8_t *)&little == 1 && blcksz >= 1024 && seg_size >= blcksz;
    int oom = 0;
    Step s;

    Py_BEGIN_ALLOW_THREADS
    while (ok && self->n < max_records && self->col[C_ARENA].len < max_arena &&
           walk_one(&w, nxt, prev, until, end, &tmp, &tmp_cap, &s)) {
        if (s.rp >= start) {
            if (only_rmgr < 0 || s.rec[17] == only_rmgr) {
                if (builder_append(self, s.rp, s.next, s.rec, &s.r)) {
                    oom = 1;
                    break;
                }
                count++;
            }
            walked++;
        }
        prev = s.rp;
        nxt = s.next;
    }
    Py_END_ALLOW_THREADS

    free(tmp);
    PyBuffer_Release(&view);
    if (oom && count == 0)
        return PyErr_NoMemory();
    return Py_BuildValue("KKKKIK", (unsigned long long)count, nxt, prev,
                         (unsigned long long)w.latest_page, (unsigned int)w.latest_tli,
                         (unsigned long long)walked);
}

/* add(data, lsn, end, major, blcksz): append a record read by the Python reader (data: its
 * assembled bytes, whose fragments it decoded already). ValueError when they do not decode. */
static PyObject *builder_add(Builder *self, PyObject *args) {
    Py_buffer view;
    unsigned long long lsn, end;
    int major;
    unsigned int blcksz;
    if (!PyArg_ParseTuple(args, "y*KKiI", &view, &lsn, &end, &major, &blcksz))
        return NULL;
    WalRec r;
    int rc = -2;
    if (view.len >= SZ_REC && view.len <= MAX_RECORD_LEN &&
        rd32((const uint8_t *)view.buf) == (uint32_t)view.len &&
        walrec_decode(view.buf, (uint32_t)view.len, major, blcksz, &r) == WALREC_OK)
        rc = builder_append(self, lsn, end, view.buf, &r);
    PyBuffer_Release(&view);
    if (rc == -1)
        return PyErr_NoMemory();
    if (rc == -2) {
        PyErr_SetString(PyExc_ValueError, "record fragments do not decode");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* take() -> {column name: bytes}, and the builder starts over (empty). */
static PyObject *builder_take(Builder *self, PyObject *unused) {
    PyObject *d = PyDict_New();
    if (d == NULL)
        return NULL;
    for (int i = 0; i < N_COLUMNS; i++) {
        PyObject *v = PyBytes_FromStringAndSize((const char *)self->col[i].p,
                                                (Py_ssize_t)self->col[i].len);
        if (v == NULL || PyDict_SetItemString(d, COLUMN_NAMES[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    builder_reset(self);
    return d;
}

static Py_ssize_t builder_len(Builder *self) { return (Py_ssize_t)self->n; }

static PyObject *builder_arena_size(Builder *self, void *closure) {
    return PyLong_FromUnsignedLongLong(self->col[C_ARENA].len);
}

static PyMethodDef builder_methods[] = {
    {"decode", (PyCFunction)builder_decode, METH_VARARGS,
     "Walk like scan() and append the records at or after start (see the module source)."},
    {"add", (PyCFunction)builder_add, METH_VARARGS,
     "add(data, lsn, end, major, blcksz): append one record read by the Python reader."},
    {"take", (PyCFunction)builder_take, METH_NOARGS,
     "The columns as {name: bytes}; the builder is empty again."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef builder_getset[] = {
    {"arena_size", (getter)builder_arena_size, NULL, "bytes in the arena", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods builder_seq = {.sq_length = (lenfunc)builder_len};

static PyTypeObject BuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "xlogtools.parse._walscan.Builder",
    .tp_basicsize = sizeof(Builder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Column buffers of a batch of decoded records (parse/batch.py).",
    .tp_new = builder_new,
    .tp_dealloc = (destructor)builder_dealloc,
    .tp_methods = builder_methods,
    .tp_getset = builder_getset,
    .tp_as_sequence = &builder_seq,
};

/* An LSN as pg_waldump writes it, %X/%08X (at most 17 bytes); the end of what was written. */
static inline char *put_lsn_text(char *p, uint64_t x) {
    static const char hex[] = "0123456789ABCDEF";
    uint32_t hi = (uint32_t)(x >> 32), lo = (uint32_t)x;
    char t[8];
    int k = 0;
    do { t[k++] = hex[hi & 15]; hi >>= 4; } while (hi);
    while (k)
        *p++ = t[--k];
    *p++ = '/';
    for (int j = 7; j >= 0; j--)
        *p++ = hex[(lo >> (4 * j)) & 15];
    return p;
}

/* lsn_texts(u64 values) -> (offsets: n+1 int32, data): each value as "%X/%08X", the offsets
 * and data buffers of an Arrow string array. */
static PyObject *lsn_texts(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view))
        return NULL;
    Py_ssize_t n = view.len / 8;
    PyObject *offs = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    PyObject *data = PyBytes_FromStringAndSize(NULL, n * 17 + 1);
    if (offs == NULL || data == NULL) {
        Py_XDECREF(offs);
        Py_XDECREF(data);
        PyBuffer_Release(&view);
        return NULL;
    }
    int32_t *o = (int32_t *)PyBytes_AS_STRING(offs);
    char *d = PyBytes_AS_STRING(data), *p = d;
    const uint8_t *v = view.buf;
    o[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        p = put_lsn_text(p, rd64(v + 8 * i));
        o[i + 1] = (int32_t)(p - d);
    }
    PyBuffer_Release(&view);
    if (_PyBytes_Resize(&data, p - d) < 0) {
        Py_DECREF(offs);
        return NULL;
    }
    return Py_BuildValue("NN", offs, data);
}

/* main_u64(arena, rec_off, main_off, main_len, select, at) -> bytes of len(select) uint64:
 * for each record index in select (int64), the 8 bytes at `at` in its main data, little-
 * endian, with zeros for what lies past the main data's end (as rmgr/_util.Buf reads). */
static PyObject *main_u64(PyObject *self, PyObject *args) {
    Py_buffer arena, roff, moff, mlen, sel;
    unsigned int at;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*I", &arena, &roff, &moff, &mlen, &sel, &at))
        return NULL;
    Py_ssize_t n = sel.len / 8, nrec = roff.len / 8;
    PyObject *out = NULL;
    if (moff.len / 4 < nrec || mlen.len / 4 < nrec) {
        PyErr_SetString(PyExc_ValueError, "column lengths differ");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, n * 8);
    if (out == NULL)
        goto done;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *a = arena.buf;
    for (Py_ssize_t k = 0; k < n; k++) {
        int64_t i = (int64_t)rd64((const uint8_t *)sel.buf + 8 * k);
        uint8_t v[8] = {0};
        if (i >= 0 && i < nrec) {
            uint64_t base = rd64((const uint8_t *)roff.buf + 8 * i);
            uint32_t mo = rd32((const uint8_t *)moff.buf + 4 * i);
            uint32_t ml = rd32((const uint8_t *)mlen.buf + 4 * i);
            for (uint32_t j = 0; j < 8; j++)
                if (at + j < ml && base + mo + at + j < (uint64_t)arena.len)
                    v[j] = a[base + mo + at + j];
        }
        memcpy(o + 8 * k, v, 8);
    }
done:
    PyBuffer_Release(&arena);
    PyBuffer_Release(&roff);
    PyBuffer_Release(&moff);
    PyBuffer_Release(&mlen);
    PyBuffer_Release(&sel);
    return out;
}

/* TimestampTz values (microseconds since 2000-01-01 UTC) whose text time_text writes in
 * the 29 bytes of put_time_text: the years 1000-9999. */
#define TIME_TEXT_LO (-30610224000000000LL - 946684800000000LL)   /* 1000-01-01 */
#define TIME_TEXT_HI (253402300799999999LL - 946684800000000LL)   /* 9999-12-31 23:59:59.999999 */

/* v (TIME_TEXT_LO..TIME_TEXT_HI) as psql prints a timestamptz with TimeZone UTC,
 * "%04d-%02d-%02d %02d:%02d:%02d.%06d+00": 29 bytes at w. */
static void put_time_text(char *w, int64_t v) {
    PgTm tm;
    pg_ts2tm(v, &tm);
    int64_t mm = tm.month, dd = tm.day;
    int hh = tm.hour, mi = tm.minute, ss = tm.second;
    int f = tm.usec, yy = (int)tm.year;
    w[0] = (char)('0' + yy / 1000); w[1] = (char)('0' + yy / 100 % 10);
    w[2] = (char)('0' + yy / 10 % 10); w[3] = (char)('0' + yy % 10); w[4] = '-';
    w[5] = (char)('0' + mm / 10); w[6] = (char)('0' + mm % 10); w[7] = '-';
    w[8] = (char)('0' + dd / 10); w[9] = (char)('0' + dd % 10); w[10] = ' ';
    w[11] = (char)('0' + hh / 10); w[12] = (char)('0' + hh % 10); w[13] = ':';
    w[14] = (char)('0' + mi / 10); w[15] = (char)('0' + mi % 10); w[16] = ':';
    w[17] = (char)('0' + ss / 10); w[18] = (char)('0' + ss % 10); w[19] = '.';
    for (int j = 25; j >= 20; j--) {
        w[j] = (char)('0' + f % 10);
        f /= 10;
    }
    w[26] = '+'; w[27] = '0'; w[28] = '0';
}

/* ---- join_rows: text lines from columns (dump's jsonl and csv of a batch) ----
 *
 * join_rows(n, parts) -> (offsets: n+1 int32, data): row i is the concatenation of each
 * part's text for row i, where a part is
 *   (0, literal)                              the same bytes in every row
 *   (1, typecode, values)                     an unsigned integer column ('Q','I','H','B') in decimal
 *   (2, offsets, data, valid, mode)           a string column (Arrow offsets int32 n+1 and
 *        data; valid: n uint8 or None) written raw (mode 0), as json.dumps writes a str
 *        (mode 1: quoted, \" \\ \n... escaped, non-ASCII as \uXXXX; null as null), or as
 *        csv.writer's QUOTE_MINIMAL field (mode 2: quoted when it holds , " or \n; null empty)
 *   (3, flags, true_text, false_text)         n uint8: one text or the other
 *   (4, list_offsets, offsets, data)          a list of strings per row: [a,b,...]
 *   (5, values)                               n uint64 LSNs as %X/%08X
 *   (6, codes, offsets, data)                 n int32 codes into a string table (Arrow
 *        offsets and data), each entry written as it is (the caller escapes it once)
 *   (7, values, valid, null_text, quoted)     n int64 TimestampTz (valid: n uint8 or None)
 *        as time_texts writes them, in double quotes when `quoted`; null_text for a null.
 *        Every valid value must be within TIME_TEXT_LO..TIME_TEXT_HI (the caller checks;
 *        others are an error here)
 */
typedef struct {
    int kind, mode;
    char code;
    Py_buffer a, b, c, d;
    int has_a, has_b, has_c, has_d;
    Py_ssize_t entries;     /* kind 6: the string table's size */
    int has_last;           /* kind 7: the last value written, and its text */
    int64_t last;
    char last_text[29];
} Part;

/* n bytes from s to w. Most pieces of a line are short (a literal like ,"xid": or an LSN
 * text): those are copied with a few fixed-size moves (overlapping where n is not a power of
 * two) instead of a call to memcpy for each. */
static inline void copy_bytes(uint8_t *w, const uint8_t *s, size_t n) {
    if (n > 32) {
        memcpy(w, s, n);
    } else if (n >= 16) {
        uint8_t a[16], b[16];
        memcpy(a, s, 16);
        memcpy(b, s + n - 16, 16);
        memcpy(w, a, 16);
        memcpy(w + n - 16, b, 16);
    } else if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(w, &a, 8);
        memcpy(w + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(w, &a, 4);
        memcpy(w + n - 4, &b, 4);
    } else if (n) {
        w[0] = s[0];
        w[n / 2] = s[n / 2];
        w[n - 1] = s[n - 1];
    }
}

static inline int out_put(Buf *o, const void *p, size_t n) {
    if (buf_reserve(o, n))
        return -1;
    copy_bytes(o->p + o->len, p, n);
    o->len += n;
    return 0;
}

static const char DIGIT_PAIRS[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";
static const uint64_t POW10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

/* v in decimal: its digit count from its bit length (log10 2 ~ 1233/4096, corrected by one
 * comparison), then the digits two at a time from the end. */
static inline int out_u64(Buf *o, uint64_t v) {
    if (buf_reserve(o, 20))
        return -1;
    uint8_t *w = o->p + o->len;
    if (v < 10) {
        *w = (uint8_t)('0' + v);
        o->len += 1;
        return 0;
    }
    int t = ((64 - __builtin_clzll(v)) * 1233) >> 12;
    int k = t + 1 - (v < POW10[t]);
    uint8_t *e = w + k;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        e -= 2;
        memcpy(e, DIGIT_PAIRS + 2 * r, 2);
    }
    if (v >= 10) {
        e -= 2;
        memcpy(e, DIGIT_PAIRS + 2 * v, 2);
    } else {
        *--e = (uint8_t)('0' + v);
    }
    o->len += (size_t)k;
    return 0;
}

static int out_json_str(Buf *o, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (buf_reserve(o, 2 + n * 12))  /* a 4-byte character becomes 12 bytes (two \uXXXX) */
        return -1;
    uint8_t *w = o->p + o->len;
    *w++ = '"';
    for (size_t i = 0; i < n;) {
        /* 8 bytes at a time while none needs escaping: no control character, quote,
         * backslash, DEL or non-ASCII byte */
        while (i + 8 <= n) {
            uint64_t x;
            memcpy(&x, s + i, 8);
            const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
            uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\'), d = x ^ (ones * 0x7F);
            uint64_t bad = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) |
                           ((d - ones) & ~d) | x;
            if (bad & highs)
                break;
            memcpy(w, &x, 8);
            w += 8;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t ch = s[i];
        if (ch >= 0x20 && ch < 0x7F) {
            if (ch == '"' || ch == '\\')
                *w++ = '\\';
            *w++ = ch;
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = 1;
        if (ch < 0x80) {
            cp = ch;
        } else if ((ch & 0xE0) == 0xC0 && i + 1 < n) {
            cp = ((uint32_t)(ch & 0x1F) << 6) | (s[i + 1] & 0x3F);
            len = 2;
        } else if ((ch & 0xF0) == 0xE0 && i + 2 < n) {
            cp = ((uint32_t)(ch & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            len = 3;
        } else if ((ch & 0xF8) == 0xF0 && i + 3 < n) {
            cp = ((uint32_t)(ch & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
                 ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
            len = 4;
        } else {
            return -2;  /* not UTF-8 (Arrow strings are): the caller does it in Python */
        }
        i += len;
        const char *short_esc = NULL;
        switch (cp) {
        case '\n': short_esc = "\\n"; break;
        case '\r': short_esc = "\\r"; break;
        case '\t': short_esc = "\\t"; break;
        case '\b': short_esc = "\\b"; break;
        case '\f': short_esc = "\\f"; break;
        }
        if (short_esc) {
            *w++ = (uint8_t)short_esc[0];
            *w++ = (uint8_t)short_esc[1];
            continue;
        }
        uint32_t units[2];
        int nu = 0;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            units[nu++] = 0xD800 | (cp >> 10);
            units[nu++] = 0xDC00 | (cp & 0x3FF);
        } else {
            units[nu++] = cp;
        }
        for (int u = 0; u < nu; u++) {
            *w++ = '\\';
            *w++ = 'u';
            for (int j = 3; j >= 0; j--)
                *w++ = (uint8_t)hex[(units[u] >> (4 * j)) & 15];
        }
    }
    *w++ = '"';
    o->len = (size_t)(w - o->p);
    return 0;
}

static int out_csv_field(Buf *o, const uint8_t *s, size_t n) {
    int quote = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n') {
            quote = 1;
            break;
        }
    if (!quote)
        return out_put(o, s, n);
    if (buf_reserve(o, 2 + 2 * n))
        return -1;
    uint8_t *w = o->p + o->len;
    *w++ = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            *w++ = '"';
        *w++ = s[i];
    }
    *w++ = '"';
    o->len = (size_t)(w - o->p);
    return 0;
}

static void parts_release(Part *parts, Py_ssize_t np) {
    for (Py_ssize_t k = 0; k < np; k++) {
        if (parts[k].has_a) PyBuffer_Release(&parts[k].a);
        if (parts[k].has_b) PyBuffer_Release(&parts[k].b);
        if (parts[k].has_c) PyBuffer_Release(&parts[k].c);
        if (parts[k].has_d) PyBuffer_Release(&parts[k].d);
    }
}

static int get_buf(PyObject *obj, Py_buffer *v, int *has) {
    if (PyObject_GetBuffer(obj, v, PyBUF_SIMPLE) < 0)
        return -1;
    *has = 1;
    return 0;
}

static PyObject *join_rows(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    PyObject *plist;
    if (!PyArg_ParseTuple(args, "nO!", &n, &PyList_Type, &plist))
        return NULL;
    Py_ssize_t np = PyList_GET_SIZE(plist);
    Part *parts = calloc((size_t)(np ? np : 1), sizeof(Part));
    if (parts == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    Buf out = {NULL, 0, 0, NULL};  /* the text, written straight into the bytes returned */
    PyObject *offsobj = NULL;
    if (n < 0 || n > (PY_SSIZE_T_MAX / 4) - 1) {
        PyErr_SetString(PyExc_ValueError, "bad row count");
        goto done;
    }
    for (Py_ssize_t k = 0; k < np; k++) {
        PyObject *t = PyList_GET_ITEM(plist, k);
        Part *q = &parts[k];
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 2) {
            PyErr_SetString(PyExc_TypeError, "a part is a tuple");
            goto done;
        }
        q->kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
        Py_ssize_t need = q->kind == 0 || q->kind == 5 ? 2 : q->kind == 1 ? 3
                        : q->kind == 2 || q->kind == 7 ? 5 : 4;
        if (PyTuple_GET_SIZE(t) != need) {
            PyErr_SetString(PyExc_TypeError, "wrong part size");
            goto done;
        }
        if (q->kind == 0) {
            if (get_buf(PyTuple_GET_ITEM(t, 1), &q->a, &q->has_a)) goto done;
        } else if (q->kind == 1) {
            PyObject *code = PyTuple_GET_ITEM(t, 1);
            if (!PyUnicode_Check(code) || PyUnicode_GET_LENGTH(code) != 1) {
                PyErr_SetString(PyExc_TypeError, "typecode");
                goto done;
            }
            q->code = (char)PyUnicode_READ_CHAR(code, 0);
            int w = q->code == 'Q' ? 8 : q->code == 'I' ? 4 : q->code == 'H' ? 2 : q->code == 'B' ? 1 : 0;
            if (w == 0 || get_buf(PyTuple_GET_ITEM(t, 2), &q->a, &q->has_a)) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "typecode");
                goto done;
            }
            if (q->a.len < n * w) { PyErr_SetString(PyExc_ValueError, "short column"); goto done; }
        } else if (q->kind == 2) {
            if (get_buf(PyTuple_GET_ITEM(t, 1), &q->a, &q->has_a) ||
                get_buf(PyTuple_GET_ITEM(t, 2), &q->b, &q->has_b)) goto done;
            if (PyTuple_GET_ITEM(t, 3) != Py_None &&
                get_buf(PyTuple_GET_ITEM(t, 3), &q->c, &q->has_c)) goto done;
            q->mode = (int)PyLong_AsLong(PyTuple_GET_ITEM(t, 4));
            if (q->a.len < (n + 1) * 4 || (q->has_c && q->c.len < n)) {
                PyErr_SetString(PyExc_ValueError, "short column");
                goto done;
            }
        } else if (q->kind == 3) {
            if (get_buf(PyTuple_GET_ITEM(t, 1), &q->a, &q->has_a) ||
                get_buf(PyTuple_GET_ITEM(t, 2), &q->b, &q->has_b) ||
                get_buf(PyTuple_GET_ITEM(t, 3), &q->c, &q->has_c)) goto done;
            if (q->a.len < n) { PyErr_SetString(PyExc_ValueError, "short column"); goto done; }
        } else if (q->kind == 4) {
            if (get_buf(PyTuple_GET_ITEM(t, 1), &q->a, &q->has_a) ||
                get_buf(PyTuple_GET_ITEM(t, 2), &q->b, &q->has_b) ||
                get_buf(PyTuple_GET_ITEM(t, 3), &q->c, &q->has_c)) goto done;
            if (q->a.len < (n + 1) * 4) { PyErr_SetString(PyExc_ValueError, "short column"); goto done; }
        } else if (q->kind == 5) {
            if (get_buf(PyTuple_GET_ITEM(t, 1), &q->a, &q->has_a)) goto done;
            if (q->a.len < n * 8) { PyErr_SetString(PyExc_ValueError, "short column"); goto done; }
        } else if (q->kind == 6) {
            if (get_buf(PyTuple_GET_ITEM(t, 1), &q->a, &q->has_a) ||
                get_buf(PyTuple_GET_ITEM(t, 2), &q->b, &q->has_b) ||
                get_buf(PyTuple_GET_ITEM(t, 3), &q->c, &q->has_c)) goto done;
            q->entries = q->b.len / 4 - 1;
            if (q->a.len < n * 4 || q->entries < 0) {
                PyErr_SetString(PyExc_ValueError, "short column");
                goto done;
            }
        } else if (q->kind == 7) {
            if (get_buf(PyTuple_GET_ITEM(t, 1), &q->a, &q->has_a) ||
                get_buf(PyTuple_GET_ITEM(t, 3), &q->b, &q->has_b)) goto done;
            if (PyTuple_GET_ITEM(t, 2) != Py_None &&
                get_buf(PyTuple_GET_ITEM(t, 2), &q->c, &q->has_c)) goto done;
            q->mode = PyObject_IsTrue(PyTuple_GET_ITEM(t, 4));
            if (q->mode < 0) goto done;
            if (q->a.len < n * 8 || (q->has_c && q->c.len < n)) {
                PyErr_SetString(PyExc_ValueError, "short column");
                goto done;
            }
        } else {
            PyErr_SetString(PyExc_ValueError, "unknown part kind");
            goto done;
        }
    }
    /* the output's likely size, so that it is rarely grown: each part's share */
    size_t est = 64;
    for (Py_ssize_t k = 0; k < np; k++) {
        Part *q = &parts[k];
        size_t per = q->kind == 0 ? (size_t)q->a.len : q->kind == 1 ? 8
                   : q->kind == 3 ? (size_t)(q->b.len > q->c.len ? q->b.len : q->c.len)
                   : q->kind == 5 ? 17 : q->kind == 6 ? 12 : q->kind == 7 ? 31 : 4;
        est += per * (size_t)n;
        if (q->kind == 2 || q->kind == 4) {
            size_t data = (size_t)(q->kind == 2 ? q->b.len : q->c.len);
            est += data + data / 8;
        }
    }
    offsobj = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    if (offsobj == NULL)
        goto done;
    out.owner = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)est);
    if (out.owner == NULL)
        goto done;
    out.p = (uint8_t *)PyBytes_AS_STRING(out.owner);
    out.cap = est;
    int32_t *offs = (int32_t *)PyBytes_AS_STRING(offsobj);
    offs[0] = 0;
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        for (Py_ssize_t k = 0; k < np && rc == 0; k++) {
            Part *q = &parts[k];
            const uint8_t *a = q->a.buf;
            switch (q->kind) {
            case 0:
                rc = out_put(&out, q->a.buf, (size_t)q->a.len);
                break;
            case 1: {
                uint64_t v = q->code == 'Q' ? rd64(a + 8 * i) : q->code == 'I' ? rd32(a + 4 * i)
                           : q->code == 'H' ? rd16(a + 2 * i) : a[i];
                rc = out_u64(&out, v);
                break;
            }
            case 2: {
                int valid = !q->has_c || ((const uint8_t *)q->c.buf)[i];
                int32_t lo = (int32_t)rd32(a + 4 * i), hi = (int32_t)rd32(a + 4 * (i + 1));
                if (lo < 0 || hi < lo || hi > q->b.len) { rc = -3; break; }
                const uint8_t *sp = (const uint8_t *)q->b.buf + lo;
                if (!valid)
                    rc = q->mode == 1 ? out_put(&out, "null", 4) : 0;
                else if (q->mode == 1)
                    rc = out_json_str(&out, sp, (size_t)(hi - lo));
                else if (q->mode == 2)
                    rc = out_csv_field(&out, sp, (size_t)(hi - lo));
                else
                    rc = out_put(&out, sp, (size_t)(hi - lo));
                break;
            }
            case 3:
                rc = a[i] ? out_put(&out, q->b.buf, (size_t)q->b.len)
                          : out_put(&out, q->c.buf, (size_t)q->c.len);
                break;
            case 4: {
                int32_t lo = (int32_t)rd32(a + 4 * i), hi = (int32_t)rd32(a + 4 * (i + 1));
                const uint8_t *eo = q->b.buf;
                if (lo < 0 || hi < lo) { rc = -3; break; }
                rc = out_put(&out, "[", 1);
                for (int32_t e = lo; e < hi && rc == 0; e++) {
                    if ((e + 2) * 4 > q->b.len) { rc = -3; break; }
                    int32_t s0 = (int32_t)rd32(eo + 4 * e), s1 = (int32_t)rd32(eo + 4 * (e + 1));
                    if (s0 < 0 || s1 < s0 || s1 > q->c.len) { rc = -3; break; }
                    if (e > lo)
                        rc = out_put(&out, ",", 1);
                    if (rc == 0)
                        rc = out_put(&out, (const uint8_t *)q->c.buf + s0, (size_t)(s1 - s0));
                }
                if (rc == 0)
                    rc = out_put(&out, "]", 1);
                break;
            }
            case 5:
                if (buf_reserve(&out, 17)) { rc = -1; break; }
                out.len = (size_t)((uint8_t *)put_lsn_text((char *)out.p + out.len, rd64(a + 8 * i))
                                   - out.p);
                break;
            case 6: {
                int32_t code = (int32_t)rd32(a + 4 * i);
                const uint8_t *eo = q->b.buf;
                if (code < 0 || code >= q->entries) { rc = -3; break; }
                int32_t s0 = (int32_t)rd32(eo + 4 * code), s1 = (int32_t)rd32(eo + 4 * (code + 1));
                if (s0 < 0 || s1 < s0 || s1 > q->c.len) { rc = -3; break; }
                rc = out_put(&out, (const uint8_t *)q->c.buf + s0, (size_t)(s1 - s0));
                break;
            }
            case 7: {
                if (q->has_c && !((const uint8_t *)q->c.buf)[i]) {
                    rc = out_put(&out, q->b.buf, (size_t)q->b.len);
                    break;
                }
                int64_t v;
                memcpy(&v, a + 8 * i, 8);
                if (v < TIME_TEXT_LO || v > TIME_TEXT_HI) { rc = -3; break; }
                if (buf_reserve(&out, 31)) { rc = -1; break; }
                uint8_t *w = out.p + out.len;
                if (!q->has_last || v != q->last) {  /* a transaction's records share a time */
                    put_time_text(q->last_text, v);
                    q->last = v;
                    q->has_last = 1;
                }
                if (q->mode)
                    *w++ = '"';
                memcpy(w, q->last_text, 29);
                w += 29;
                if (q->mode)
                    *w++ = '"';
                out.len = (size_t)(w - out.p);
                break;
            }
            }
        }
        if (rc == 0) {
            if (out.len > INT32_MAX) { rc = -4; break; }
            offs[i + 1] = (int32_t)out.len;
        }
    }
    if (rc == -1) { PyErr_NoMemory(); goto done; }
    if (rc == -2) { PyErr_SetString(PyExc_UnicodeError, "not UTF-8"); goto done; }
    if (rc == -3) { PyErr_SetString(PyExc_ValueError, "offsets out of range"); goto done; }
    if (rc == -4) { PyErr_SetString(PyExc_OverflowError, "more than 2 GB of text"); goto done; }
    if (_PyBytes_Resize(&out.owner, (Py_ssize_t)out.len) == 0)
        result = PyTuple_Pack(2, offsobj, out.owner);
done:
    parts_release(parts, np);
    free(parts);
    Py_XDECREF(out.owner);
    Py_XDECREF(offsobj);
    return result;
}

/* time_texts(values, valid) -> (offsets n+1 int32, data, odd): TimestampTz values (n int64,
 * microseconds since 2000-01-01 UTC; valid: n uint8 or None) as psql prints a timestamptz
 * with TimeZone UTC, "2025-01-31 12:00:00.123456+00" (rows.time_text); a null is an empty
 * string, and so is a value outside the years 1000-9999, which odd (n uint8) marks for the
 * caller to make with time_text itself. */
static PyObject *time_texts(PyObject *self, PyObject *args) {
    Py_buffer vals;
    PyObject *validobj;
    if (!PyArg_ParseTuple(args, "y*O", &vals, &validobj))
        return NULL;
    Py_buffer valid;
    int has_valid = 0;
    if (validobj != Py_None) {
        if (PyObject_GetBuffer(validobj, &valid, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&vals);
            return NULL;
        }
        has_valid = 1;
    }
    Py_ssize_t n = vals.len / 8;
    PyObject *offs = NULL, *data = NULL, *odd = NULL, *res = NULL;
    if (has_valid && valid.len < n) {
        PyErr_SetString(PyExc_ValueError, "short validity");
        goto done;
    }
    offs = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    data = PyBytes_FromStringAndSize(NULL, n * 29 + 1);
    odd = PyBytes_FromStringAndSize(NULL, n);
    if (offs == NULL || data == NULL || odd == NULL)
        goto done;
    int32_t *o = (int32_t *)PyBytes_AS_STRING(offs);
    char *d = PyBytes_AS_STRING(data), *p = d;
    uint8_t *od = (uint8_t *)PyBytes_AS_STRING(odd);
    const int64_t lo = TIME_TEXT_LO, hi = TIME_TEXT_HI;
    /* the text of the last value written (records of a transaction share a commit time) */
    int64_t last = 0;
    const char *last_p = NULL;
    o[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, (const uint8_t *)vals.buf + 8 * i, 8);
        int ok = !has_valid || ((const uint8_t *)valid.buf)[i];
        od[i] = 0;
        if (ok && (v < lo || v > hi)) {
            od[i] = 1;
            ok = 0;
        }
        if (ok && last_p != NULL && v == last) {
            memcpy(p, last_p, 29);
            last_p = p;
            p += 29;
        } else if (ok) {
            put_time_text(p, v);
            last = v;
            last_p = p;
            p += 29;
        }
        o[i + 1] = (int32_t)(p - d);
    }
    if (_PyBytes_Resize(&data, p - d) < 0)
        goto done;
    res = Py_BuildValue("OOO", offs, data, odd);
done:
    Py_XDECREF(offs);
    Py_XDECREF(data);
    Py_XDECREF(odd);
    PyBuffer_Release(&vals);
    if (has_valid)
        PyBuffer_Release(&valid);
    return res;
}

static PyObject *crc32c_py(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned int value = 0;
    if (!PyArg_ParseTuple(args, "y*|I", &view, &value))
        return NULL;
    uint32_t c = crc_update(value ^ 0xFFFFFFFFu, view.buf, (size_t)view.len) ^ 0xFFFFFFFFu;
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

/* rfind_aligned(buf, needle, lo, hi): the largest 8-byte-aligned offset p, lo <= p and
 * p + 8 <= hi, where the 8 bytes at p equal the 8 bytes of needle; -1 when there is none.
 * locate's search for checkpoint records (which are MAXALIGNed) walks back with it; the
 * Python path does the same with bytes.rfind and an alignment check. */
static PyObject *rfind_aligned(PyObject *self, PyObject *args) {
    Py_buffer view, pat;
    long long lo, hi;
    if (!PyArg_ParseTuple(args, "y*y*LL", &view, &pat, &lo, &hi))
        return NULL;
    long long found = -1;
    if (pat.len == 8) {
        uint64_t want;
        memcpy(&want, pat.buf, 8);
        const uint8_t *b = view.buf;
        if (hi > (long long)view.len)
            hi = (long long)view.len;
        if (lo < 0)
            lo = 0;
        Py_BEGIN_ALLOW_THREADS
        for (long long p = ((hi - 8) / 8) * 8; p >= lo && hi >= 8; p -= 8) {
            uint64_t v;
            memcpy(&v, b + p, 8);
            if (v == want) {
                found = p;
                break;
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&pat);
    PyBuffer_Release(&view);
    if (pat.len != 8) {
        PyErr_SetString(PyExc_ValueError, "needle must be 8 bytes");
        return NULL;
    }
    return PyLong_FromLongLong(found);
}

static PyObject *set_hw(PyObject *self, PyObject *args) {
    int on;
    if (!PyArg_ParseTuple(args, "p", &on))
        return NULL;
    int was = have_sse42;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    have_sse42 = on && __builtin_cpu_supports("sse4.2");
#endif
    return PyBool_FromLong(was);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Walk the ordinary records of one loaded segment (see the module source)."},
    {"main_u64", main_u64, METH_VARARGS, "8 bytes at an offset of the main data of selected records (zero-padded)."},
    {"join_rows", join_rows, METH_VARARGS, "Text lines from columns and literals (see the module source)."},
    {"time_texts", time_texts, METH_VARARGS, "TimestampTz values as psql prints them in UTC (see the module source)."},
    {"lsn_texts", lsn_texts, METH_VARARGS, "LSNs (uint64 buffer) as Arrow string offsets and data (%X/%08X)."},
    {"rfind_aligned", rfind_aligned, METH_VARARGS, "Last 8-byte-aligned offset in [lo, hi) holding the 8-byte needle, or -1."},
    {"crc32c", crc32c_py, METH_VARARGS, "CRC-32C of a buffer, continuing from value (for tests)."},
    {"set_hw", set_hw, METH_VARARGS, "Use the SSE4.2 CRC instruction if the CPU has it (tests); the old setting."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walscan(void) {
    crc_init();
    if (PyType_Ready(&BuilderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&BuilderType);
    if (PyModule_AddObject(m, "Builder", (PyObject *)&BuilderType) < 0) {
        Py_DECREF(&BuilderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
