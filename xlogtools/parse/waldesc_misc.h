/*
 * waldesc_misc.h: the other resource managers' descriptions (smgr.py, clog.py, dbase.py,
 * relmap.py, seq.py, mxact.py, committs.py, gist.py, hash.py, spgist.py, brin.py, generic.py,
 * gin.py, tblspc.py, replorigin.py, logicalmsg.py).
 * Part of _waldesc.c (header-only static functions, included once there).
 */
#ifndef XLOGTOOLS_WALDESC_MISC_H
#define XLOGTOOLS_WALDESC_MISC_H

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

#endif
