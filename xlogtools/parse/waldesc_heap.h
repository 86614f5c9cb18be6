/*
 * waldesc_heap.h: Heap, Heap2 and Btree descriptions (heap.py, heap2.py, nbtree.py).
 * Part of _waldesc.c (header-only static functions, included once there).
 */
#ifndef XLOGTOOLS_WALDESC_HEAP_H
#define XLOGTOOLS_WALDESC_HEAP_H

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

#endif
