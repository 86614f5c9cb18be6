"""pglz decompression (common/pg_lzcompress.c), used for full-page images and inline
compressed varlena values.

Format: a control byte announces 8 items, low bit first. A clear bit is one literal byte; a set
bit is a back-reference tag of 2 or 3 bytes: length (low nibble of byte 0) + 3, offset (high
nibble of byte 0 << 8 | byte 1); length 18 means "add byte 2".
"""
from __future__ import annotations

from ..errors import XlogError


class PglzError(XlogError, ValueError):
    pass


def pglz_decompress(src: bytes, rawsize: int, check_complete: bool = True) -> bytes:
    """Decompress `src` into exactly `rawsize` bytes (as pglz_decompress with check_complete)."""
    out = bytearray()
    sp = 0
    srcend = len(src)
    while sp < srcend and len(out) < rawsize:
        ctrl = src[sp]
        sp += 1
        for _ in range(8):
            if sp >= srcend or len(out) >= rawsize:
                break
            if ctrl & 1:
                if sp + 1 >= srcend:
                    raise PglzError("truncated pglz tag")
                b0 = src[sp]
                b1 = src[sp + 1]
                sp += 2
                length = (b0 & 0x0F) + 3
                off = ((b0 & 0xF0) << 4) | b1
                if length == 18:
                    if sp >= srcend:
                        raise PglzError("truncated pglz tag")
                    length += src[sp]
                    sp += 1
                if off == 0 or off > len(out):
                    raise PglzError("pglz back-reference before start of output")
                length = min(length, rawsize - len(out))
                start = len(out) - off
                if off >= length:
                    out += out[start:start + length]
                else:
                    # Overlapping copy repeats the last `off` bytes.
                    chunk = out[start:]
                    reps, rest = divmod(length, off)
                    out += chunk * reps + chunk[:rest]
            else:
                out.append(src[sp])
                sp += 1
            ctrl >>= 1
    if check_complete and (len(out) != rawsize or sp != srcend):
        raise PglzError(f"pglz data decompressed to {len(out)} of {rawsize} bytes")
    return bytes(out)
