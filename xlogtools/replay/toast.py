"""TOAST: out-of-line values reassembled from the chunks seen in the WAL
(heaptoast.c toast_fetch_datum, detoast.c), and value decompression (pglz, lz4).

A TOAST table row is (chunk_id oid, chunk_seq int4, chunk_data bytea). Chunks are collected
from the inserts into TOAST relations the replay sees, and from full-page images of TOAST pages
(scanned on demand when a pointer names a value not seen being inserted).
"""
from __future__ import annotations

import struct
from typing import Callable

from .tuples import SIZEOF_HEAP_TUPLE_HEADER, ToastPointer, TupleError, Unresolved, read_varlena

_u32 = struct.Struct("<I").unpack_from
_i32 = struct.Struct("<i").unpack_from


def parse_chunk(tup: bytes, major: int) -> tuple[int, int, bytes]:
    """(chunk_id, chunk_seq, chunk_data) of a TOAST table tuple."""
    hoff = tup[SIZEOF_HEAP_TUPLE_HEADER - 1]
    off = (hoff + 3) & ~3
    chunk_id = _u32(tup, off)[0]
    seq = _i32(tup, off + 4)[0]
    off += 8
    if tup[off] == 0:
        off = (off + 3) & ~3
    data, _ = read_varlena(tup, off, major)
    if not isinstance(data, bytes):
        raise TupleError("TOAST chunk data is not a plain value")
    return chunk_id, seq, data


class ToastStore:
    """Chunks by value id; `scan(toastrelid)` is called when a value is missing, to index the
    chunks of the TOAST relation's pages the replay holds."""

    def __init__(self, major: int) -> None:
        self.major = major
        self.chunks: dict[int, dict[int, bytes]] = {}
        self.scan: Callable[[int], None] | None = None
        self._scanned_gen: dict[int, int] = {}
        self.generation = 0  # bumped by the page cache when TOAST pages change

    def add_tuple(self, tup: bytes) -> None:
        try:
            cid, seq, data = parse_chunk(tup, self.major)
        except (TupleError, IndexError, struct.error):
            return
        self.chunks.setdefault(cid, {})[seq] = data

    def fetch(self, p: ToastPointer) -> bytes:
        got = self._assemble(p)
        if got is None and self.scan is not None \
                and self._scanned_gen.get(p.toastrelid) != self.generation:
            self._scanned_gen[p.toastrelid] = self.generation
            self.scan(p.toastrelid)
            got = self._assemble(p)
        if got is None:
            have = self.chunks.get(p.valueid, {})
            raise Unresolved(f"TOAST value {p.valueid} ({p.extsize} bytes) was stored before "
                             f"the WAL read ({sum(map(len, have.values()))} bytes of it seen)")
        return got

    def _assemble(self, p: ToastPointer) -> bytes | None:
        parts = self.chunks.get(p.valueid)
        if not parts:
            return None
        out = []
        for seq in range(len(parts)):
            chunk = parts.get(seq)
            if chunk is None:
                return None
            out.append(chunk)
        data = b"".join(out)
        if len(data) != p.extsize:
            return None
        return data
