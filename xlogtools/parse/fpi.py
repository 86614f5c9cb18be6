"""Full-page image restore (RestoreBlockImage of access/transam/xlogreader.c).

An image is stored without its "hole" (the free space between pd_lower and pd_upper), maybe
compressed (pglz in 13-14; pglz, lz4 or zstd from 15). Restoring gives the BLCKSZ page.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import WalFormatError
from .pglz import pglz_decompress

if TYPE_CHECKING:
    from .record import BlockRef, Record


class ImageError(WalFormatError):
    """An image that cannot be restored; message in PostgreSQL's words."""


def decompress_image(method: str, src: bytes, rawsize: int) -> bytes:
    if method == "pglz":
        return pglz_decompress(src, rawsize, True)
    if method == "lz4":
        import lz4.block

        out: bytes = lz4.block.decompress(src, uncompressed_size=rawsize)
        return out
    if method == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(src, max_output_size=rawsize)
    raise ImageError(f"unknown compression method {method!r}")


def restore_block_image(rec: "Record", b: "BlockRef") -> bytes:
    if not b.has_image:
        raise ImageError(
            f"could not restore image at {rec.lsn} with invalid state, block {b.block_id}")
    blcksz = rec.block_size
    img = rec.data[b.image_off:b.image_off + b.image_len]
    if b.compression:
        want = blcksz - b.hole_length
        try:
            img = decompress_image(b.compression, img, want)
        except Exception as exc:  # pglz, lz4 and zstd each raise their own kinds
            raise ImageError(f"could not decompress image at {rec.lsn}, block {b.block_id}") from exc
        if len(img) != want:
            raise ImageError(f"could not decompress image at {rec.lsn}, block {b.block_id}")
    if b.hole_length == 0:
        page = bytes(img)
    else:
        ho = b.hole_offset
        page = img[:ho] + bytes(b.hole_length) + img[ho:]
    if len(page) != blcksz:
        raise ImageError(f"could not restore image at {rec.lsn}: got {len(page)} bytes, block {b.block_id}")
    return page
