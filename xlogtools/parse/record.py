"""The decoded record (DecodedXLogRecord of access/xlogreader.h) and fragment decoding
(DecodeXLogRecord of xlogreader.c), PostgreSQL 13-18.

The record keeps the assembled bytes; block references and main data are offsets into them,
so nothing is copied until a caller asks for a payload.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..lsn import Lsn
from . import layout as L

_U16 = L.U16.unpack_from
_U32 = L.U32.unpack_from
_RELFILE = L.RELFILE.unpack_from
_IMAGE = L.IMAGE_HEADER.unpack_from


class DecodeError(Exception):
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

    @property
    def rmgr_name(self) -> str:
        return L.rmgr_name(self.rmid)

    @property
    def fpi_len(self) -> int:
        return sum(b.image_len for b in self.blocks if b.has_image)

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


def decode_fragments(rec: Record) -> None:
    """Parse the fragment headers after the record header; fill rec.blocks etc.

    Raises DecodeError with PostgreSQL's wording when the headers are inconsistent.
    Does not assume how many blocks a record type has.
    """
    data = rec.data
    pos = L.SIZE_OF_XLOG_RECORD
    end = rec.tot_len
    remaining = end - pos
    datatotal = 0
    blocks: list[BlockRef] = []
    max_block_id = -1
    pre15 = rec.pg_major < 15
    blcksz = rec.block_size
    last_rel: tuple[int, int, int] | None = None
    while remaining > datatotal:
        block_id = data[pos]
        pos += 1
        remaining -= 1
        if block_id == L.XLR_BLOCK_ID_DATA_SHORT:
            if remaining < 1:
                raise DecodeError("record with invalid length")
            rec.main_data_len = data[pos]
            pos += 1
            remaining -= 1
            datatotal += rec.main_data_len
            break
        if block_id == L.XLR_BLOCK_ID_DATA_LONG:
            if remaining < 4:
                raise DecodeError("record with invalid length")
            rec.main_data_len = _U32(data, pos)[0]
            pos += 4
            remaining -= 4
            datatotal += rec.main_data_len
            break
        if block_id == L.XLR_BLOCK_ID_ORIGIN:
            if remaining < 2:
                raise DecodeError("record with invalid length")
            rec.origin = _U16(data, pos)[0]
            pos += 2
            remaining -= 2
            continue
        if block_id == L.XLR_BLOCK_ID_TOPLEVEL_XID and rec.pg_major >= 14:
            if remaining < 4:
                raise DecodeError("record with invalid length")
            rec.toplevel_xid = _U32(data, pos)[0]
            pos += 4
            remaining -= 4
            continue
        if block_id > L.XLR_MAX_BLOCK_ID:
            raise DecodeError(f"invalid block_id {block_id}")
        if block_id <= max_block_id:
            raise DecodeError(f"out-of-order block_id {block_id}")
        max_block_id = block_id
        if remaining < 3:
            raise DecodeError("record with invalid length")
        fork_flags = data[pos]
        data_len = _U16(data, pos + 1)[0]
        pos += 3
        remaining -= 3
        has_data = fork_flags & L.BKPBLOCK_HAS_DATA
        if has_data and data_len == 0:
            raise DecodeError("BKPBLOCK_HAS_DATA set, but no data included")
        if not has_data and data_len != 0:
            raise DecodeError(f"BKPBLOCK_HAS_DATA not set, but data length is {data_len}")
        datatotal += data_len
        b = BlockRef(block_id, fork_flags, 0, 0, 0, 0, data_len)
        if fork_flags & L.BKPBLOCK_HAS_IMAGE:
            if remaining < 5:
                raise DecodeError("record with invalid length")
            bimg_len, hole_offset, bimg_info = _IMAGE(data, pos)
            pos += 5
            remaining -= 5
            b.has_image = True
            b.image_len = bimg_len
            b.hole_offset = hole_offset
            b.bimg_info = bimg_info
            if pre15:
                b.apply_image = bool(bimg_info & L.BKPIMAGE_APPLY_PRE15)
                compressed = bool(bimg_info & L.BKPIMAGE_IS_COMPRESSED_PRE15)
                if compressed:
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
                        raise DecodeError("record with invalid length")
                    b.hole_length = _U16(data, pos)[0]
                    pos += 2
                    remaining -= 2
            else:
                b.hole_length = blcksz - bimg_len
            datatotal += bimg_len
            if has_hole and (hole_offset == 0 or b.hole_length == 0 or bimg_len == blcksz):
                raise DecodeError(
                    f"BKPIMAGE_HAS_HOLE set, but hole offset {hole_offset} length "
                    f"{b.hole_length} block image length {bimg_len}")
            if not has_hole and (hole_offset != 0 or b.hole_length != 0):
                raise DecodeError(
                    f"BKPIMAGE_HAS_HOLE not set, but hole offset {hole_offset} length "
                    f"{b.hole_length}")
            if compressed and bimg_len == blcksz:
                raise DecodeError(f"BKPIMAGE_COMPRESSED set, but block image length {bimg_len}")
            if not has_hole and not compressed and bimg_len != blcksz:
                raise DecodeError(
                    "neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block image "
                    f"length is {bimg_len}")
        if not fork_flags & L.BKPBLOCK_SAME_REL:
            if remaining < 12:
                raise DecodeError("record with invalid length")
            last_rel = _RELFILE(data, pos)
            pos += 12
            remaining -= 12
        elif last_rel is None:
            raise DecodeError("BKPBLOCK_SAME_REL set but no previous rel")
        b.spc, b.db, b.rel = last_rel
        if remaining < 4:
            raise DecodeError("record with invalid length")
        b.blk = _U32(data, pos)[0]
        pos += 4
        remaining -= 4
        blocks.append(b)
    if remaining != datatotal:
        raise DecodeError("record with invalid length")
    # payloads follow the headers: per block image then data, then main data
    for b in blocks:
        if b.has_image:
            b.image_off = pos
            pos += b.image_len
        if b.data_len:
            b.data_off = pos
            pos += b.data_len
    rec.main_data_off = pos
    rec.blocks = blocks
