"""Batches of decoded records as columns (the columnar twin of `Record`), for the exports.

`WalReader.batches()` hands out `WalBatch`es: per record the header fields and fragment
offsets as fixed-width column buffers, per block reference child columns with list offsets
(`block_offsets`, n + 1 int32, as an Arrow list), and the **arena**: a copy of every record's
assembled bytes, header included, each at `rec_off[i]` (8-aligned). The buffers are `bytes`,
so pyarrow wraps them without copying (`WalBatch.arrow(name)`), and native code takes the
arena and the offsets as they are (native describe: `describe_batch(batch.arena,
batch.rec_offsets, batch.n, batch.pg_major, batch.block_size)`).

The C extension fills the columns while it walks ordinary records (`_walscan.Builder`);
the records the Python reader reads (the unusual ones, or all of them without the extension)
are appended by `PyBuilder`, which writes the same bytes. `WalBatch.record(i)` makes the full
`Record` again from the arena.
"""
from __future__ import annotations

import bisect
import os
import struct
from array import array
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence

from ..lsn import Lsn
from .record import Record, decode_fragments

# (column, array typecode) in the builder's order; the typecodes are those of memoryview.cast
# and array.array ('I' is 4 bytes and 'Q' 8 on the platforms we build for).
TypeCode = Literal["B", "H", "I", "Q", "i"]
RECORD_COLUMNS: tuple[tuple[str, TypeCode], ...] = (
    ("lsn", "Q"), ("end", "Q"), ("prev", "Q"), ("xid", "I"), ("toplevel_xid", "I"),
    ("info", "B"), ("rmid", "B"), ("tot_len", "I"), ("fpi_len", "I"), ("origin", "H"),
    ("main_off", "I"), ("main_len", "I"), ("rec_off", "Q"),
)
BLOCK_COLUMNS: tuple[tuple[str, TypeCode], ...] = (
    ("block_id", "B"), ("fork_flags", "B"), ("spc", "I"), ("db", "I"), ("rel", "I"),
    ("blk", "I"), ("has_image", "B"), ("apply_image", "B"), ("compression", "B"),
    ("image_len", "I"), ("hole_offset", "H"), ("hole_length", "H"), ("bimg_info", "B"),
    ("data_len", "I"), ("image_off", "I"), ("data_off", "I"),
)
TYPECODES: dict[str, TypeCode] = dict(RECORD_COLUMNS + BLOCK_COLUMNS + (("block_offsets", "i"),))
# BlockRef.compression <-> the compression column's code (walrec.h WALREC_NONE/PGLZ/LZ4/ZSTD)
COMPRESSIONS: tuple[str | None, ...] = (None, "pglz", "lz4", "zstd")
_COMPRESSION_CODE = {c: i for i, c in enumerate(COMPRESSIONS)}
_ARROW_TYPES = {"Q": "uint64", "I": "uint32", "H": "uint16", "B": "uint8", "i": "int32"}


@dataclass(frozen=True)
class Run:
    """Records first .. (the next run's first - 1) are on this timeline, in this segment."""

    first: int
    timeline: int
    segment: str


@dataclass
class WalBatch:
    """n decoded records as columns (see the module docstring)."""

    n: int
    pg_major: int
    block_size: int
    buffers: dict[str, bytes]  # column name -> its values (TYPECODES), and "arena"
    runs: list[Run] = field(default_factory=list)

    @property
    def arena(self) -> bytes:
        return self.buffers["arena"]

    @property
    def rec_offsets(self) -> bytes:
        """n uint64: where each record starts in the arena."""
        return self.buffers["rec_off"]

    @property
    def nblocks(self) -> int:
        return len(self.buffers["block_id"])

    def column(self, name: str) -> memoryview:
        """A column's values (memoryview of its typecode; no copy)."""
        return memoryview(self.buffers[name]).cast(TYPECODES[name])

    def arrow(self, name: str) -> Any:
        """A column as a pyarrow array over the same buffer (no copy)."""
        import pyarrow as pa

        code = TYPECODES[name]
        typ = getattr(pa, _ARROW_TYPES[code])()
        buf = self.buffers[name]
        size = self.nblocks if name in _BLOCK_NAMES else self.n + (name == "block_offsets")
        return pa.Array.from_buffers(typ, size, [None, pa.py_buffer(buf)])

    def __post_init__(self) -> None:
        self._firsts = [r.first for r in self.runs]
        self._views: dict[str, memoryview] | None = None  # record(): the columns it reads

    def _run(self, i: int) -> Run:
        return self.runs[bisect.bisect_right(self._firsts, i) - 1]

    def timeline(self, i: int) -> int:
        return self._run(i).timeline

    def segment(self, i: int) -> str:
        return self._run(i).segment

    def record(self, i: int) -> Record:
        """Record i, as the reader made it (data, blocks, main data and all)."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        c = self._views
        if c is None:
            c = self._views = {name: self.column(name) for name in
                               ("rec_off", "tot_len", "lsn", "end", "prev", "xid")}
        off = c["rec_off"][i]
        tot_len = c["tot_len"][i]
        data = self.buffers["arena"][off:off + tot_len]
        run = self._run(i)
        rec = Record(_lsn(Lsn, c["lsn"][i]), _lsn(Lsn, c["end"][i]), _lsn(Lsn, c["prev"][i]),
                     c["xid"][i], data[16], data[17], tot_len, _U32(data, 20)[0],
                     run.timeline, run.segment, self.pg_major, data, block_size=self.block_size)
        decode_fragments(rec)
        return rec

    def records(self) -> list[Record]:
        return list(self.iter_records())

    def iter_records(self, select: Sequence[int] | None = None) -> Iterator[Record]:
        """record(i) of every record (or of those select names, in its order), made in one
        loop: the Python describers' input where the native ones do not serve."""
        cols = [self.column(name) for name in ("rec_off", "tot_len", "lsn", "end", "prev",
                                               "xid")]
        roff, tlen, lsn, end, prev, xid = cols
        arena = self.buffers["arena"]
        major, blcksz = self.pg_major, self.block_size
        firsts = self._firsts + [self.n]
        runs = self.runs
        k = 0
        run = runs[0] if runs else None
        for i in (range(self.n) if select is None else select):
            if not firsts[k] <= i < firsts[k + 1]:
                k = bisect.bisect_right(self._firsts, i) - 1
                run = runs[k]
            assert run is not None
            off = roff[i]
            tot_len = tlen[i]
            data = arena[off:off + tot_len]
            rec = Record(_lsn(Lsn, lsn[i]), _lsn(Lsn, end[i]), _lsn(Lsn, prev[i]), xid[i],
                         data[16], data[17], tot_len, _U32(data, 20)[0], run.timeline,
                         run.segment, major, data, block_size=blcksz)
            decode_fragments(rec)
            yield rec

    def main_u64(self, select: Sequence[int], at: int) -> memoryview:
        """For the records select names: the 8 bytes at `at` of the main data as uint64,
        zeros for what lies past its end (as rmgr/_util.Buf reads)."""
        if _c_main_u64 is not None:
            return memoryview(_c_main_u64(self.arena, self.rec_offsets, self.buffers["main_off"],
                                          self.buffers["main_len"],
                                          array("q", select).tobytes(), at)).cast("Q")
        roff, moff, mlen = (self.column(n) for n in ("rec_off", "main_off", "main_len"))
        arena = self.buffers["arena"]
        out = array("Q")
        for i in select:
            lo = roff[i] + moff[i]
            chunk = arena[lo + at:lo + min(mlen[i], at + 8)] if mlen[i] > at else b""
            out.append(int.from_bytes(chunk.ljust(8, b"\0"), "little"))
        return memoryview(out)


_BLOCK_NAMES = frozenset(n for n, _c in BLOCK_COLUMNS)
_c_main_u64: Callable[..., bytes] | None  # the extension's (_walscan.pyi), or None
try:
    from ._walscan import main_u64 as _c_main_u64
except ImportError:  # pragma: no cover - without the C extension
    _c_main_u64 = None
if os.environ.get("XLOGTOOLS_NO_C"):
    _c_main_u64 = None
_lsn = int.__new__  # _lsn(Lsn, value): an Lsn without Lsn.__new__'s parsing
_U32 = struct.Struct("<I").unpack_from


class PyBuilder:
    """The Python twin of _walscan.Builder: appends Records, writes the same column bytes."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cols = {name: array(code) for name, code in RECORD_COLUMNS + BLOCK_COLUMNS}
        self._offsets = array("i", [0])
        self._arena = bytearray()
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def arena_size(self) -> int:
        return len(self._arena)

    def add_record(self, rec: Record) -> None:
        c = self._cols
        arena = self._arena
        for name, value in (("lsn", rec.lsn), ("end", rec.end), ("prev", rec.prev),
                            ("xid", rec.xid), ("toplevel_xid", rec.toplevel_xid),
                            ("info", rec.info), ("rmid", rec.rmid), ("tot_len", rec.tot_len),
                            ("fpi_len", rec.fpi_len), ("origin", rec.origin),
                            ("main_off", rec.main_data_off), ("main_len", rec.main_data_len),
                            ("rec_off", len(arena))):
            c[name].append(int(value))
        for bl in rec.blocks:
            for name, value in (("block_id", bl.block_id), ("fork_flags", bl.fork_flags),
                                ("spc", bl.spc), ("db", bl.db), ("rel", bl.rel),
                                ("blk", bl.blk), ("has_image", bl.has_image),
                                ("apply_image", bl.apply_image),
                                ("compression", _COMPRESSION_CODE[bl.compression]),
                                ("image_len", bl.image_len), ("hole_offset", bl.hole_offset),
                                ("hole_length", bl.hole_length & 0xFFFF),
                                ("bimg_info", bl.bimg_info), ("data_len", bl.data_len),
                                ("image_off", bl.image_off if bl.has_image else 0),
                                ("data_off", bl.data_off if bl.data_len else 0)):
                c[name].append(int(value))
        self._offsets.append(len(c["block_id"]))
        arena += rec.data
        arena += bytes(-len(rec.data) % 8)
        self._n += 1

    def take(self) -> dict[str, bytes]:
        out = {name: a.tobytes() for name, a in self._cols.items()}
        out["block_offsets"] = self._offsets.tobytes()
        out["arena"] = bytes(self._arena)
        self._reset()
        return out
