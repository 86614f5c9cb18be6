"""The decoded record (DecodedXLogRecord of access/xlogreader.h) and fragment decoding
(DecodeXLogRecord of xlogreader.c), PostgreSQL 13-18.

The record keeps the assembled bytes; block references and main data are offsets into them,
so nothing is copied until a caller asks for a payload.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..errors import XlogError
from ..lsn import Lsn
from . import layout as L

_U16 = L.U16.unpack_from
_U32 = L.U32.unpack_from
_RELFILE = L.RELFILE.unpack_from
_IMAGE = L.IMAGE_HEADER.unpack_from


class DecodeError(XlogError):
    """Fragment headers that do not add up; message in PostgreSQL's words (without LSN)."""


@dataclass(slots=True)
class BlockRef:
    """One block reference of a record (DecodedBkpBlock)."""

    block_id: int
    fork_flags: int
    spc: int
    db: int
    rel: int
    blk: int
    data_len: int
    has_image: bool = False
    image_len: int = 0
    hole_offset: int = 0
    hole_length: int = 0
    bimg_info: int = 0
    apply_image: bool = False
    compression: str | None = None  # 'pglz' | 'lz4' | 'zstd'
    image_off: int = 0  # offset of the image bytes in Record.data
    data_off: int = 0  # offset of the block data in Record.data

    @property
    def fork(self) -> int:
        return self.fork_flags & L.BKPBLOCK_FORK_MASK

    @property
    def fork_name(self) -> str:
        f = self.fork
        return L.FORK_NAMES[f] if f < len(L.FORK_NAMES) else str(f)

    @property
    def has_data(self) -> bool:
        return bool(self.fork_flags & L.BKPBLOCK_HAS_DATA)

    @property
    def will_init(self) -> bool:
        return bool(self.fork_flags & L.BKPBLOCK_WILL_INIT)

    @property
    def relation(self) -> tuple[int, int, int]:
        return (self.spc, self.db, self.rel)


@dataclass(slots=True)
class Record:
    """A WAL record as the reader hands it out."""

    lsn: Lsn
    end: Lsn  # where the next record starts (EndRecPtr)
    prev: Lsn
    xid: int
    info: int
    rmid: int
    tot_len: int
    crc: int
    timeline: int  # by the timeline history: the timeline whose range holds lsn
    segment: str
    pg_major: int
    data: bytes  # the whole record, header included (xl_tot_len bytes)
    blocks: list[BlockRef] = field(default_factory=list)
    main_data_off: int = 0
    main_data_len: int = 0
    origin: int = 0  # InvalidRepOriginId
    toplevel_xid: int = 0  # InvalidTransactionId
    block_size: int = 8192
    fpi_len: int = 0  # bytes of full-page images (set when the fragments are decoded)

    @property
    def rmgr_name(self) -> str:
        return str(L.rmgr_name(self.rmid))

    @property
    def rec_len(self) -> int:
        """xl_tot_len less the full-page images, as pg_waldump prints 'len (rec/tot)'."""
        return self.tot_len - self.fpi_len

    @property
    def main_data(self) -> bytes:
        return self.data[self.main_data_off:self.main_data_off + self.main_data_len]

    def block_data(self, b: BlockRef) -> bytes:
        return self.data[b.data_off:b.data_off + b.data_len]

    def block_image(self, b: BlockRef) -> bytes:
        return self.data[b.image_off:b.image_off + b.image_len]

    def block(self, block_id: int) -> BlockRef | None:
        for b in self.blocks:
            if b.block_id == block_id:
                return b
        return None

    def restore_page(self, b: BlockRef) -> bytes:
        """The full page of a block reference's image (RestoreBlockImage)."""
        from .fpi import restore_block_image

        return restore_block_image(self, b)


_BH = L.BLOCK_HEADER.unpack_from  # fork_flags, data_length
_SZREC = L.SIZE_OF_XLOG_RECORD
DATA_SHORT_ID = L.XLR_BLOCK_ID_DATA_SHORT
_DATA_LONG = L.XLR_BLOCK_ID_DATA_LONG
_ORIGIN = L.XLR_BLOCK_ID_ORIGIN
_TOPXID = L.XLR_BLOCK_ID_TOPLEVEL_XID
_MAX_BLOCK_ID = L.XLR_MAX_BLOCK_ID
_HAS_DATA = L.BKPBLOCK_HAS_DATA
_HAS_IMAGE = L.BKPBLOCK_HAS_IMAGE
_SAME_REL = L.BKPBLOCK_SAME_REL


def _short() -> DecodeError:
    return DecodeError("record with invalid length")


# Block 0's header, its RelFileLocator and block number, then XLR_BLOCK_ID_DATA_SHORT and the
# main data length: the whole fragment header of most records (one block, no image).
ONE_BLOCK = struct.Struct("<BBHIIIIBB")
ONE_BLOCK_END = _SZREC + ONE_BLOCK.size  # where its block data starts
SIMPLE_BLOCK_MASK = _HAS_IMAGE | _SAME_REL


def simple_fragments(data: bytes, tot_len: int) -> tuple[list[BlockRef], int] | None:
    """(blocks, main data length) of a record whose fragments take one of the two layouts
    most records have, or None for any other layout (decode_fragments then does the work).

    The layouts: main data only (COMMIT, RUNNING_XACTS), or block 0 without image and with
    its own relation followed by main data (INSERT, HOT_UPDATE, PRUNE, INSERT_LEAF). Checking
    them with one unpack, and making the BlockRef with all its fields at once, is the reader's
    per-record fast path; the checks are those of DecodeXLogRecord for that layout.
    """
    if tot_len <= _SZREC:
        return None
    if data[_SZREC] == DATA_SHORT_ID:
        if tot_len >= _SZREC + 2 and data[_SZREC + 1] == tot_len - _SZREC - 2:
            return [], tot_len - _SZREC - 2
    elif tot_len >= ONE_BLOCK_END:
        bid, fork_flags, data_len, spc, db, rel, blk, nxt, main_len = ONE_BLOCK.unpack_from(data, _SZREC)
        if (bid == 0 and nxt == DATA_SHORT_ID and not fork_flags & SIMPLE_BLOCK_MASK
                and tot_len - ONE_BLOCK_END == data_len + main_len
                and (data_len != 0) == (fork_flags & _HAS_DATA != 0)):
            return [BlockRef(0, fork_flags, spc, db, rel, blk, data_len, False, 0, 0, 0, 0, False,
                             None, 0, ONE_BLOCK_END if data_len else 0)], main_len
    return None


def decode_fragments(rec: Record) -> None:
    """Parse the fragment headers after the record header; fill rec.blocks etc.

    Raises DecodeError with PostgreSQL's wording when the headers are inconsistent
    (DecodeXLogRecord). Does not assume how many blocks a record type has.
    """
    data = rec.data
    simple = simple_fragments(data, rec.tot_len)
    if simple is not None:
        rec.blocks, rec.main_data_len = simple
        rec.main_data_off = rec.tot_len - rec.main_data_len
        rec.fpi_len = 0
        return
    pos = _SZREC
    remaining = rec.tot_len - pos
    datatotal = 0
    blocks: list[BlockRef] = []
    max_block_id = -1
    last_rel: tuple[int, int, int] | None = None
    while remaining > datatotal:
        block_id = data[pos]
        pos += 1
        remaining -= 1
        if block_id <= _MAX_BLOCK_ID:
            if block_id <= max_block_id:
                raise DecodeError(f"out-of-order block_id {block_id}")
            max_block_id = block_id
            if remaining < 3:
                raise _short()
            fork_flags, data_len = _BH(data, pos)
            pos += 3
            remaining -= 3
            if fork_flags & _HAS_DATA:
                if data_len == 0:
                    raise DecodeError("BKPBLOCK_HAS_DATA set, but no data included")
            elif data_len != 0:
                raise DecodeError(f"BKPBLOCK_HAS_DATA not set, but data length is {data_len}")
            datatotal += data_len
            b = BlockRef(block_id, fork_flags, 0, 0, 0, 0, data_len)
            if fork_flags & _HAS_IMAGE:
                pos, remaining, img_len = _decode_image_header(rec, b, data, pos, remaining)
                datatotal += img_len
            if not fork_flags & _SAME_REL:
                if remaining < 12:
                    raise _short()
                last_rel = _RELFILE(data, pos)
                pos += 12
                remaining -= 12
            elif last_rel is None:
                raise DecodeError("BKPBLOCK_SAME_REL set but no previous rel")
            b.spc, b.db, b.rel = last_rel
            if remaining < 4:
                raise _short()
            b.blk = _U32(data, pos)[0]
            pos += 4
            remaining -= 4
            blocks.append(b)
        elif block_id == DATA_SHORT_ID:
            if remaining < 1:
                raise _short()
            rec.main_data_len = data[pos]
            pos += 1
            remaining -= 1
            datatotal += rec.main_data_len
            break  # by convention the main data fragment is the last one
        elif block_id == _DATA_LONG:
            if remaining < 4:
                raise _short()
            rec.main_data_len = _U32(data, pos)[0]
            pos += 4
            remaining -= 4
            datatotal += rec.main_data_len
            break
        elif block_id == _ORIGIN:
            if remaining < 2:
                raise _short()
            rec.origin = _U16(data, pos)[0]
            pos += 2
            remaining -= 2
        elif block_id == _TOPXID and rec.pg_major >= 14:
            if remaining < 4:
                raise _short()
            rec.toplevel_xid = _U32(data, pos)[0]
            pos += 4
            remaining -= 4
        else:
            raise DecodeError(f"invalid block_id {block_id}")
    if remaining != datatotal:
        raise _short()
    # payloads follow the headers: per block its image then its data, then the main data
    fpi = 0
    for b in blocks:
        if b.has_image:
            b.image_off = pos
            pos += b.image_len
            fpi += b.image_len
        if b.data_len:
            b.data_off = pos
            pos += b.data_len
    rec.main_data_off = pos
    rec.blocks = blocks
    rec.fpi_len = fpi


def _decode_image_header(rec: Record, b: BlockRef, data: bytes, pos: int, remaining: int
                         ) -> tuple[int, int, int]:
    """XLogRecordBlockImageHeader (+ compress header); the meaning of bimg_info's bits
    changed in 15 (lz4/zstd). Returns the new pos, remaining and the image length."""
    if remaining < 5:
        raise _short()
    bimg_len, hole_offset, bimg_info = _IMAGE(data, pos)
    pos += 5
    remaining -= 5
    blcksz = rec.block_size
    b.has_image = True
    b.image_len = bimg_len
    b.hole_offset = hole_offset
    b.bimg_info = bimg_info
    if rec.pg_major < 15:
        b.apply_image = bool(bimg_info & L.BKPIMAGE_APPLY_PRE15)
        if bimg_info & L.BKPIMAGE_IS_COMPRESSED_PRE15:
            b.compression = "pglz"
    else:
        b.apply_image = bool(bimg_info & L.BKPIMAGE_APPLY)
        if bimg_info & L.BKPIMAGE_COMPRESS_PGLZ:
            b.compression = "pglz"
        elif bimg_info & L.BKPIMAGE_COMPRESS_LZ4:
            b.compression = "lz4"
        elif bimg_info & L.BKPIMAGE_COMPRESS_ZSTD:
            b.compression = "zstd"
    compressed = b.compression is not None
    has_hole = bimg_info & L.BKPIMAGE_HAS_HOLE
    if compressed:
        if has_hole:
            if remaining < 2:
                raise _short()
            b.hole_length = _U16(data, pos)[0]
            pos += 2
            remaining -= 2
    else:
        b.hole_length = blcksz - bimg_len
    if has_hole and (hole_offset == 0 or b.hole_length == 0 or bimg_len == blcksz):
        raise DecodeError(f"BKPIMAGE_HAS_HOLE set, but hole offset {hole_offset} length "
                          f"{b.hole_length} block image length {bimg_len}")
    if not has_hole and (hole_offset != 0 or b.hole_length != 0):
        raise DecodeError(f"BKPIMAGE_HAS_HOLE not set, but hole offset {hole_offset} length "
                          f"{b.hole_length}")
    if compressed and bimg_len == blcksz:
        raise DecodeError(f"BKPIMAGE_COMPRESSED set, but block image length {bimg_len}")
    if not has_hole and not compressed and bimg_len != blcksz:
        raise DecodeError("neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block "
                          f"image length is {bimg_len}")
    return pos, remaining, bimg_len
