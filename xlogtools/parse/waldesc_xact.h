/*
 * waldesc_xact.h: Transaction, XLOG and Standby descriptions (xact.py, xlog.py, standby.py).
 * Part of _waldesc.c (header-only static functions, included once there).
 */
#ifndef XLOGTOOLS_WALDESC_XACT_H
#define XLOGTOOLS_WALDESC_XACT_H

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

#endif
