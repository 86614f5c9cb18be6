/*
 * walrec.h: one assembled WAL record's fragment headers, decoded (DecodeXLogRecord of
 * xlogreader.c, PostgreSQL 13-18), for the C extensions.
 *
 * The C twin of parse/record.py's decode_fragments(): the same checks in the same order,
 * the same offsets (block images, block data and main data are offsets into the record,
 * whose header is included), so the two agree on every record, valid or not.  Header-only
 * (static functions): each extension that includes it gets its own copy.
 *
 *   WalRec r;
 *   if (walrec_decode(rec, tot_len, major, blcksz, &r) != 0) ... r.error says why
 */
#ifndef XLOGTOOLS_WALREC_H
#define XLOGTOOLS_WALREC_H

#include <stdint.h>
#include <string.h>

#define WALREC_SZ_HDR 24            /* SizeOfXLogRecord */
#define WALREC_MAX_BLOCK_ID 32      /* XLR_MAX_BLOCK_ID */
#define WALREC_ID_DATA_SHORT 255
#define WALREC_ID_DATA_LONG 254
#define WALREC_ID_ORIGIN 253
#define WALREC_ID_TOPLEVEL_XID 252

#define WALREC_FORK_MASK 0x0F
#define WALREC_HAS_IMAGE 0x10
#define WALREC_HAS_DATA 0x20
#define WALREC_WILL_INIT 0x40
#define WALREC_SAME_REL 0x80

#define WALREC_IMG_HAS_HOLE 0x01
#define WALREC_IMG_COMPRESSED_PRE15 0x02
#define WALREC_IMG_APPLY_PRE15 0x04
#define WALREC_IMG_APPLY 0x02
#define WALREC_IMG_PGLZ 0x04
#define WALREC_IMG_LZ4 0x08
#define WALREC_IMG_ZSTD 0x10

enum { WALREC_NONE = 0, WALREC_PGLZ = 1, WALREC_LZ4 = 2, WALREC_ZSTD = 3 };  /* compression */

/* Why a record's fragments do not add up (DecodeError's messages in record.py). */
enum {
    WALREC_OK = 0,
    WALREC_E_LENGTH,        /* "record with invalid length" */
    WALREC_E_ORDER,         /* "out-of-order block_id %u" */
    WALREC_E_DATA_FLAG,     /* "BKPBLOCK_HAS_DATA set, but no data included" */
    WALREC_E_DATA_LEN,      /* "BKPBLOCK_HAS_DATA not set, but data length is %u" */
    WALREC_E_HOLE_SET,      /* "BKPIMAGE_HAS_HOLE set, but hole offset ..." */
    WALREC_E_HOLE_UNSET,    /* "BKPIMAGE_HAS_HOLE not set, but hole offset ..." */
    WALREC_E_COMPRESSED,    /* "BKPIMAGE_COMPRESSED set, but block image length %u" */
    WALREC_E_IMAGE_LEN,     /* "neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, ..." */
    WALREC_E_SAME_REL,      /* "BKPBLOCK_SAME_REL set but no previous rel" */
    WALREC_E_BLOCK_ID,      /* "invalid block_id %u" */
};

typedef struct {
    uint8_t id;             /* block_id */
    uint8_t fork_flags;     /* fork number (low 4 bits) and BKPBLOCK_* flags */
    uint16_t data_len;
    uint32_t spc, db, rel;  /* RelFileLocator */
    uint32_t blk;
    uint8_t has_image;
    uint8_t apply_image;
    uint8_t compression;    /* WALREC_NONE / PGLZ / LZ4 / ZSTD */
    uint8_t bimg_info;
    uint16_t image_len;     /* bimg_len: bytes of the image in the record */
    uint16_t hole_offset;
    uint16_t hole_length;
    uint32_t image_off;     /* offset of the image bytes in the record (when has_image) */
    uint32_t data_off;      /* offset of the block data in the record (when data_len) */
} WalBlock;

typedef struct {
    /* the record header */
    uint32_t tot_len;
    uint32_t xid;
    uint64_t prev;
    uint8_t info;
    uint8_t rmid;
    uint32_t crc;
    /* the fragments */
    int nblocks;
    WalBlock blocks[WALREC_MAX_BLOCK_ID + 1];
    uint32_t main_off, main_len;
    uint16_t origin;        /* 0 = InvalidRepOriginId */
    uint32_t toplevel_xid;  /* 0 = InvalidTransactionId (14+) */
    uint32_t fpi_len;       /* sum of image_len */
    /* when walrec_decode fails: WALREC_E_* and the number its message names (block id,
       data length, hole offset, image length) and the second/third (hole length, image) */
    int error;
    uint32_t err_a, err_b, err_c;
} WalRec;

static inline uint16_t walrec_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t walrec_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t walrec_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static inline int walrec_fail(WalRec *r, int error, uint32_t a, uint32_t b, uint32_t c) {
    r->error = error;
    r->err_a = a;
    r->err_b = b;
    r->err_c = c;
    return error;
}

/*
 * Decode the record `d` of `len` bytes (len >= 24; the header's xl_tot_len is taken from
 * `len`, which the caller has checked against it).  0 when the fragments add up, else a
 * WALREC_E_* code (also in r->error).  Reads no byte at or after d + len.
 */
static int walrec_decode(const uint8_t *d, uint32_t len, int major, uint32_t blcksz, WalRec *r) {
    r->tot_len = len;
    r->xid = walrec_u32(d + 4);
    r->prev = walrec_u64(d + 8);
    r->info = d[16];
    r->rmid = d[17];
    r->crc = walrec_u32(d + 20);
    r->nblocks = 0;
    r->main_off = r->main_len = 0;
    r->origin = 0;
    r->toplevel_xid = 0;
    r->fpi_len = 0;
    r->error = WALREC_OK;

    uint32_t pos = WALREC_SZ_HDR;
    int64_t remaining = (int64_t)len - WALREC_SZ_HDR;
    int64_t datatotal = 0;
    int max_block_id = -1;
    const WalBlock *last_rel = NULL;
    while (remaining > datatotal) {
        uint8_t block_id = d[pos++];
        remaining--;
        if (block_id <= WALREC_MAX_BLOCK_ID) {
            if ((int)block_id <= max_block_id)
                return walrec_fail(r, WALREC_E_ORDER, block_id, 0, 0);
            max_block_id = block_id;
            if (remaining < 3)
                return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
            WalBlock *b = &r->blocks[r->nblocks];
            memset(b, 0, sizeof *b);
            b->id = block_id;
            b->fork_flags = d[pos];
            b->data_len = walrec_u16(d + pos + 1);
            pos += 3;
            remaining -= 3;
            if (b->fork_flags & WALREC_HAS_DATA) {
                if (b->data_len == 0)
                    return walrec_fail(r, WALREC_E_DATA_FLAG, 0, 0, 0);
            } else if (b->data_len != 0) {
                return walrec_fail(r, WALREC_E_DATA_LEN, b->data_len, 0, 0);
            }
            datatotal += b->data_len;
            if (b->fork_flags & WALREC_HAS_IMAGE) {
                if (remaining < 5)
                    return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
                uint16_t bimg_len = walrec_u16(d + pos);
                uint16_t hole_offset = walrec_u16(d + pos + 2);
                uint8_t bimg_info = d[pos + 4];
                pos += 5;
                remaining -= 5;
                b->has_image = 1;
                b->image_len = bimg_len;
                b->hole_offset = hole_offset;
                b->bimg_info = bimg_info;
                if (major < 15) {
                    b->apply_image = (bimg_info & WALREC_IMG_APPLY_PRE15) != 0;
                    if (bimg_info & WALREC_IMG_COMPRESSED_PRE15)
                        b->compression = WALREC_PGLZ;
                } else {
                    b->apply_image = (bimg_info & WALREC_IMG_APPLY) != 0;
                    if (bimg_info & WALREC_IMG_PGLZ)
                        b->compression = WALREC_PGLZ;
                    else if (bimg_info & WALREC_IMG_LZ4)
                        b->compression = WALREC_LZ4;
                    else if (bimg_info & WALREC_IMG_ZSTD)
                        b->compression = WALREC_ZSTD;
                }
                int compressed = b->compression != WALREC_NONE;
                int has_hole = (bimg_info & WALREC_IMG_HAS_HOLE) != 0;
                uint32_t hole_length = 0;
                if (compressed) {
                    if (has_hole) {
                        if (remaining < 2)
                            return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
                        hole_length = walrec_u16(d + pos);
                        pos += 2;
                        remaining -= 2;
                    }
                } else {
                    hole_length = blcksz - bimg_len;
                }
                b->hole_length = (uint16_t)hole_length;
                if (has_hole && (hole_offset == 0 || hole_length == 0 || bimg_len == blcksz))
                    return walrec_fail(r, WALREC_E_HOLE_SET, hole_offset, hole_length, bimg_len);
                if (!has_hole && (hole_offset != 0 || hole_length != 0))
                    return walrec_fail(r, WALREC_E_HOLE_UNSET, hole_offset, hole_length, 0);
                if (compressed && bimg_len == blcksz)
                    return walrec_fail(r, WALREC_E_COMPRESSED, bimg_len, 0, 0);
                if (!has_hole && !compressed && bimg_len != blcksz)
                    return walrec_fail(r, WALREC_E_IMAGE_LEN, bimg_len, 0, 0);
                datatotal += bimg_len;
            }
            if (!(b->fork_flags & WALREC_SAME_REL)) {
                if (remaining < 12)
                    return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
                b->spc = walrec_u32(d + pos);
                b->db = walrec_u32(d + pos + 4);
                b->rel = walrec_u32(d + pos + 8);
                pos += 12;
                remaining -= 12;
                last_rel = b;
            } else if (last_rel == NULL) {
                return walrec_fail(r, WALREC_E_SAME_REL, 0, 0, 0);
            } else {
                b->spc = last_rel->spc;
                b->db = last_rel->db;
                b->rel = last_rel->rel;
            }
            if (remaining < 4)
                return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
            b->blk = walrec_u32(d + pos);
            pos += 4;
            remaining -= 4;
            r->nblocks++;
        } else if (block_id == WALREC_ID_DATA_SHORT) {
            if (remaining < 1)
                return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
            r->main_len = d[pos];
            pos += 1;
            remaining -= 1;
            datatotal += r->main_len;
            break;  /* by convention the main data fragment is the last one */
        } else if (block_id == WALREC_ID_DATA_LONG) {
            if (remaining < 4)
                return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
            r->main_len = walrec_u32(d + pos);
            pos += 4;
            remaining -= 4;
            datatotal += r->main_len;
            break;
        } else if (block_id == WALREC_ID_ORIGIN) {
            if (remaining < 2)
                return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
            r->origin = walrec_u16(d + pos);
            pos += 2;
            remaining -= 2;
        } else if (block_id == WALREC_ID_TOPLEVEL_XID && major >= 14) {
            if (remaining < 4)
                return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
            r->toplevel_xid = walrec_u32(d + pos);
            pos += 4;
            remaining -= 4;
        } else {
            return walrec_fail(r, WALREC_E_BLOCK_ID, block_id, 0, 0);
        }
    }
    if (remaining != datatotal)
        return walrec_fail(r, WALREC_E_LENGTH, 0, 0, 0);
    /* the payloads follow the headers: per block its image then its data, then main data */
    for (int i = 0; i < r->nblocks; i++) {
        WalBlock *b = &r->blocks[i];
        if (b->has_image) {
            b->image_off = pos;
            pos += b->image_len;
            r->fpi_len += b->image_len;
        }
        if (b->data_len) {
            b->data_off = pos;
            pos += b->data_len;
        }
    }
    r->main_off = pos;
    return WALREC_OK;
}

#endif
