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
 * offsets: n + 1 int32; data: UTF-8; fallback: n uint8 (1 = not done here).  The shared
 * helpers are in waldesc_util.h, the rmgrs' describe functions in waldesc_heap.h (Heap, Heap2,
 * Btree), waldesc_xact.h (Transaction, XLOG, Standby) and waldesc_misc.h (the others); this
 * file has the type names, the dispatch and the batch functions.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "walrec.h"
#include "waldesc_util.h"
#include "waldesc_heap.h"
#include "waldesc_xact.h"
#include "waldesc_misc.h"

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
