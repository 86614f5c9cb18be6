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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "walrec.h"

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
    {"rfind_aligned", rfind_aligned, METH_VARARGS, "Last 8-byte-aligned offset in [lo, hi) holding the 8-byte needle, or -1."},
    {"crc32c", crc32c_py, METH_VARARGS, "CRC-32C of a buffer, continuing from value (for tests)."},
    {"set_hw", set_hw, METH_VARARGS, "Use the SSE4.2 CRC instruction if the CPU has it (tests); the old setting."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_walscan", NULL, -1, methods};

PyMODINIT_FUNC PyInit__walscan(void) {
    crc_init();
    return PyModule_Create(&module);
}
