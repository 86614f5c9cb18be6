"""Heap pages as the replay holds them (storage/bufpage.h, itemid.h): a cache keyed by
(tablespace, database, relfilenode, block) of the main fork.

A page is kept as its line pointers: offset -> tuple bytes (LP_NORMAL), the redirect target
(LP_REDIRECT) or DEAD. Free-space bookkeeping is left out on purpose: the replay never has to
find room for a tuple, records say where each one goes. A page is *complete* when it came from a
full-page image or was initialised by the record (WILL_INIT); otherwise it is *partial* and
holds only the items the WAL read put there, so a missing item means "unknown", not "absent".
Images are parsed lazily: many pages are imaged and never read again.
"""
from __future__ import annotations

import struct
from typing import Iterator

from ..errors import XlogError

LP_UNUSED, LP_NORMAL, LP_REDIRECT, LP_DEAD = 0, 1, 2, 3
SIZE_OF_PAGE_HEADER = 24


class _Dead:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEAD"


DEAD = _Dead()

Key = tuple[int, int, int, int]  # spc, db, rel, blk
Item = bytes | int | _Dead  # tuple, redirect target, dead line pointer


class PageFormatError(XlogError, ValueError):
    pass


def parse_page(raw: bytes) -> dict[int, Item]:
    """Line pointers of a heap page image (PageGetItemId / PageGetItem)."""
    if len(raw) < SIZE_OF_PAGE_HEADER:
        raise PageFormatError("page shorter than its header")
    pd_lower, pd_upper, pd_special = struct.unpack_from("<HHH", raw, 12)
    if pd_upper == 0:  # PageIsNew: all zeroes
        return {}
    if not SIZE_OF_PAGE_HEADER <= pd_lower <= pd_upper <= pd_special <= len(raw):
        raise PageFormatError(f"corrupt page header: lower {pd_lower} upper {pd_upper} "
                              f"special {pd_special}")
    n = (pd_lower - SIZE_OF_PAGE_HEADER) // 4
    items: dict[int, Item] = {}
    for i, lp in enumerate(struct.unpack_from(f"<{n}I", raw, SIZE_OF_PAGE_HEADER)):
        off = lp & 0x7FFF
        flags = (lp >> 15) & 0x3
        length = lp >> 17
        if flags == LP_NORMAL:
            if off + length > len(raw) or length == 0:
                continue  # a broken pointer: leave the item unknown
            items[i + 1] = raw[off:off + length]
        elif flags == LP_REDIRECT:
            items[i + 1] = off
        elif flags == LP_DEAD:
            items[i + 1] = DEAD
    return items


class Page:
    __slots__ = ("_items", "_raw", "complete")

    def __init__(self, raw: bytes | None = None, complete: bool = True) -> None:
        self._raw = raw
        self._items: dict[int, Item] | None = None if raw is not None else {}
        self.complete = complete

    @property
    def items(self) -> dict[int, Item]:
        if self._items is None:
            try:
                self._items = parse_page(self._raw or b"")
            except PageFormatError:
                self._items = {}
                self.complete = False
            self._raw = None
        return self._items

    def tuple(self, offnum: int) -> bytes | None:
        it = self.items.get(offnum)
        return it if isinstance(it, bytes) else None

    def knows(self, offnum: int) -> bool:
        return self.complete or offnum in self.items


class PageCache:
    """The pages of the relations the replay follows, main fork only."""

    def __init__(self) -> None:
        self.pages: dict[Key, Page] = {}
        self.by_rel: dict[tuple[int, int, int], set[int]] = {}

    def __len__(self) -> int:
        return len(self.pages)

    def get(self, key: Key) -> Page | None:
        return self.pages.get(key)

    def _put(self, key: Key, page: Page) -> Page:
        if key not in self.pages:
            self.by_rel.setdefault(key[:3], set()).add(key[3])
        self.pages[key] = page
        return page

    def set_image(self, key: Key, raw: bytes) -> Page:
        return self._put(key, Page(raw, True))

    def init(self, key: Key) -> Page:
        return self._put(key, Page(None, True))

    def get_or_partial(self, key: Key) -> Page:
        page = self.pages.get(key)
        if page is None:
            page = self._put(key, Page(None, False))
        return page

    def truncate(self, rel: tuple[int, int, int], nblocks: int) -> None:
        """smgr truncation: blocks >= nblocks are gone."""
        blocks = self.by_rel.get(rel)
        if not blocks:
            return
        for blk in [b for b in blocks if b >= nblocks]:
            blocks.discard(blk)
            self.pages.pop((*rel, blk), None)

    def drop(self, rel: tuple[int, int, int]) -> None:
        self.truncate(rel, 0)

    def rel_pages(self, rel: tuple[int, int, int]) -> Iterator[Page]:
        for blk in sorted(self.by_rel.get(rel, ())):
            page = self.pages.get((*rel, blk))
            if page is not None:
                yield page
