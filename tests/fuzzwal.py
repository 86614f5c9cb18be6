"""Records of real WAL changed so that they still pass the reader: the record's bytes are
mutated where they lie in the segments (across page headers too) and the record CRC is
computed again, CRC-32C over the payload after the 24-byte header, then over the header up
to xl_crc, as PostgreSQL's ValidXLogRecord checks it.  What the reader then hands out reaches
every decoder above it: that is what tests/test_fuzz_crc.py drives.

A mutation keeps xl_tot_len (the page layout stays valid) except "shorten", which ends a record
that lies on one page earlier; the reader then stops at the garbage where the next record was.
"""
from __future__ import annotations

import random
import signal
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from crc32c import crc32c

from xlogtools.lsn import Lsn
from xlogtools.parse.reader import WalReader
from xlogtools.parse.record import Record
from xlogtools.parse.source import ClusterInfo, MemorySource, WalSource

SZREC = 24  # SizeOfXLogRecord
CRC_OFF = 20  # offsetof(XLogRecord, xl_crc)
SHORT_PHD, LONG_PHD = 24, 40  # MAXALIGNed page header sizes
RM_MAX_BUILTIN = 21


@dataclass(frozen=True)
class Wal:
    """Segments of one cluster held in memory, and the clean records read from them."""

    cluster: ClusterInfo
    tli: int
    segments: dict[int, bytes]  # segno -> bytes
    records: list[Record]
    groups: list[list[int]] = field(default_factory=list)  # record indexes by rmgr and info

    @classmethod
    def load(cls, paths: list[Path]) -> "Wal":
        src = WalSource.open(list(paths))
        assert src.cluster is not None
        tli = max(src.timelines())
        segs = {segno: bytes(src.read(src.segment(tli, segno)))  # type: ignore[arg-type]
                for segno in src.segnos(tli)}
        wal = cls(src.cluster, tli, segs, [])
        reader = wal.reader(segs, None)
        wal.records.extend(reader)
        by_kind: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(wal.records):
            by_kind.setdefault((r.rmid, r.info & 0xF0), []).append(i)
        wal.groups.extend(by_kind[k] for k in sorted(by_kind))
        return wal

    def source(self, segs: dict[int, bytes]) -> MemorySource:
        return MemorySource(self.cluster, {(self.tli, s): b for s, b in segs.items()})

    def reader(self, segs: dict[int, bytes], start: int | None) -> WalReader:
        src = self.source(segs)
        if start is None:
            return WalReader(src)
        return WalReader(src, start=Lsn(start), exact_start=True)

    def chunks(self, lsn: int, tot_len: int) -> list[tuple[int, int, int]]:
        """(segno, offset, length) of each piece of the record's bytes in the segments."""
        seg_size, blcksz = self.cluster.seg_size, self.cluster.block_size
        out = []
        pos, left = lsn, tot_len
        while left:
            page_end = pos - pos % blcksz + blcksz
            n = min(left, page_end - pos)
            out.append((pos // seg_size, pos % seg_size, n))
            left -= n
            pos = page_end
            if left:
                pos += LONG_PHD if pos % seg_size == 0 else SHORT_PHD
        return out

    def patched(self, rec: Record, data: bytes) -> dict[int, bytes]:
        """The segments with the record's bytes replaced by `data` (same xl_tot_len, or less
        for a record on one page), its CRC made right."""
        data = with_crc(data)
        segs = dict(self.segments)
        done = 0
        pieces = self.chunks(int(rec.lsn), rec.tot_len)
        changed: dict[int, bytearray] = {}
        for segno, off, n in pieces:
            buf = changed.get(segno)
            if buf is None:
                buf = changed[segno] = bytearray(segs[segno])
            part = data[done:done + n]
            buf[off:off + len(part)] = part
            done += n
        for segno, buf in changed.items():
            segs[segno] = bytes(buf)
        return segs


def with_crc(data: bytes) -> bytes:
    crc = crc32c(data[:CRC_OFF], crc32c(data[SZREC:]))
    return data[:CRC_OFF] + struct.pack("<I", crc) + data[SZREC:]


# -- mutations ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fragments:
    """Where a record's fragment headers keep their lengths (DecodeXLogRecord's walk)."""

    block_len_at: list[int]  # offset of each block's data_length (uint16)
    main_len_at: int | None  # offset of the main data length (uint8 or uint32)
    main_long: bool


def payload_start(rec: Record) -> int:
    """Where the fragment headers end: the first image, block data or main data."""
    return min([b.image_off for b in rec.blocks if b.has_image]
               + [b.data_off for b in rec.blocks if b.data_len] + [rec.main_data_off])


def fragments(rec: Record) -> Fragments:
    d = rec.data
    pos = SZREC
    block_len_at: list[int] = []
    blocks = iter(rec.blocks)
    end = payload_start(rec)
    while pos < end:
        bid = d[pos]
        pos += 1
        if bid <= 32:
            b = next(blocks)
            block_len_at.append(pos + 1)
            pos += 3
            if b.has_image:
                info = d[pos + 4]
                pos += 5
                compressed = (info & 0x02) if rec.pg_major < 15 else (info & 0x1C)
                if compressed and info & 0x01:
                    pos += 2
            if not b.fork_flags & 0x80:  # BKPBLOCK_SAME_REL
                pos += 12
            pos += 4
        elif bid == 255:
            return Fragments(block_len_at, pos, False)
        elif bid == 254:
            return Fragments(block_len_at, pos, True)
        elif bid == 253:
            pos += 2
        elif bid == 252:
            pos += 4
        else:
            break
    return Fragments(block_len_at, None, False)


KINDS = ("payload", "payload", "count", "count", "shift", "shorten", "info", "rmid",
         "header", "image")
BIG = (0xFF, 0xFFFF, 0x7FFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x10000, 0x1000)


def mutate(rng: random.Random, rec: Record, kind: str) -> bytes | None:
    """The record's bytes changed by one kind of mutation (None: not applicable)."""
    d = bytearray(rec.data)
    areas = [(rec.main_data_off, rec.main_data_len)] if rec.main_data_len else []
    areas += [(b.data_off, b.data_len) for b in rec.blocks if b.data_len]
    if kind == "payload":
        if not areas:
            return None
        off, n = rng.choice(areas)
        for _ in range(rng.choice((1, 1, 2, 4, 16))):
            p = off + rng.randrange(n)
            if rng.random() < 0.5:
                d[p] ^= 1 << rng.randrange(8)
            else:
                d[p] = rng.randrange(256)
    elif kind == "count":  # a count or length field read from the data, made big
        if not areas:
            return None
        off, n = rng.choice(areas)
        width = rng.choice((1, 2, 2, 4, 4, 8))
        p = off + rng.randrange(max(n - width + 1, 1)) // width * width
        v = rng.choice(BIG + (n, n + 1, rng.randrange(1 << 16)))
        d[p:p + width] = (v & ((1 << (8 * width)) - 1)).to_bytes(width, "little")[:len(d) - p]
    elif kind == "shift":  # move the boundary between a block's data and the main data
        fr = fragments(rec)
        if fr.main_len_at is None or fr.main_long or not fr.block_len_at:
            return None
        i = rng.randrange(len(fr.block_len_at))
        b = rec.blocks[i]
        if not b.data_len or i != len(rec.blocks) - 1:
            return None  # only the last block's data is next to the main data
        main_len = d[fr.main_len_at]
        if rng.random() < 0.5 and main_len:  # the main data loses its first bytes
            k = rng.randrange(1, main_len + 1)
            struct.pack_into("<H", d, fr.block_len_at[i], b.data_len + k)
            d[fr.main_len_at] = main_len - k
        else:  # the block data loses its last bytes
            k = rng.randrange(1, b.data_len)  if b.data_len > 1 else 0
            if not k or main_len + k > 255:
                return None
            struct.pack_into("<H", d, fr.block_len_at[i], b.data_len - k)
            d[fr.main_len_at] = main_len + k
    elif kind == "shorten":  # main data cut short (a record on one page only)
        fr = fragments(rec)
        blcksz = rec.block_size
        if fr.main_len_at is None or fr.main_long or not rec.main_data_len \
                or int(rec.lsn) % blcksz + rec.tot_len > blcksz:
            return None
        k = rng.randrange(1, rec.main_data_len + 1)
        d[fr.main_len_at] = rec.main_data_len - k
        del d[len(d) - k:]
        struct.pack_into("<I", d, 0, len(d))
    elif kind == "info":  # xl_info is byte 16 of XLogRecord, xl_rmid byte 17
        d[16] = rng.randrange(256) if rng.random() < 0.3 else (rng.randrange(16) << 4) | (
            d[16] & 0x0F)
    elif kind == "rmid":  # another built-in resource manager, or (15+) a custom one
        d[17] = rng.randrange(128, 256) if rec.pg_major >= 15 and rng.random() < 0.2 \
            else rng.randrange(RM_MAX_BUILTIN + 1)
        if rng.random() < 0.5:
            d[16] = (rng.randrange(16) << 4) | (d[16] & 0x0F)
    elif kind == "header":  # the fragment headers themselves
        end = payload_start(rec)
        if end <= SZREC:
            return None
        p = rng.randrange(SZREC, end)
        d[p] = rng.randrange(256) if rng.random() < 0.5 else d[p] ^ (1 << rng.randrange(8))
    elif kind == "image":
        imgs = [b for b in rec.blocks if b.has_image and b.image_len]
        if not imgs:
            return None
        b = rng.choice(imgs)
        for _ in range(rng.choice((1, 4, 32))):
            d[b.image_off + rng.randrange(b.image_len)] = rng.randrange(256)
    else:
        raise AssertionError(kind)
    if bytes(d) == rec.data:
        return None
    return bytes(d)


# -- the time budget ----------------------------------------------------------------------------
class Hang(BaseException):
    """Raised by the alarm: a case that took longer than its budget (not an Exception, so no
    `except Exception` in the code under test swallows it)."""


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    def ring(_sig: int, _frame: object) -> None:
        raise Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
