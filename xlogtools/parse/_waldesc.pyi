# Stub of the C extension _waldesc.c (pg_waldump's record types, descriptions and lines for a
# batch of records); the signatures are those of its PyArg_ParseTuple formats.
from _typeshed import ReadableBuffer
from collections.abc import Sequence

# (offsets: n + 1 int32, data: UTF-8, fallback: n uint8)
def describe_batch(arena: ReadableBuffer, rec_offsets: ReadableBuffer, n: int, major: int,
                   blcksz: int, /) -> tuple[bytes, bytes, bytes]: ...
def identify_batch(arena: ReadableBuffer, rec_offsets: ReadableBuffer, n: int, major: int, /
                   ) -> tuple[bytes, bytes, bytes]: ...
def waldump_lines(arena: ReadableBuffer, rec_offsets: ReadableBuffer, lsns: ReadableBuffer,
                  n: int, major: int, blcksz: int, bkp_details: bool,
                  desc_offsets: ReadableBuffer, desc_data: ReadableBuffer, /) -> bytes: ...
def splice(desc_offsets: ReadableBuffer, desc_data: ReadableBuffer, n: int,
           indexes: Sequence[int], texts: Sequence[bytes], /) -> tuple[bytes, bytes]: ...
