"""One error tree. Every error can carry where it happened: file, offset, LSN.

A damaged or ended WAL stream is *not* an error here: the reader returns an
`EndOfWal` result for it (see parse.reader). Errors are for what stops us from
reading at all: missing paths, files that are not WAL, mixed clusters, bad options.
"""
from __future__ import annotations

from typing import Any


class XlogError(Exception):
    """Root of every error xlogtools raises on purpose."""

    def __init__(self, message: str, *, file: str | None = None, offset: int | None = None,
                 lsn: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.offset = offset
        self.lsn = lsn

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        if self.lsn is not None:
            where.append(f"LSN {self.lsn}")
        # Messages that already name their place are left as they are.
        if where and not any(w.split(" ", 1)[1] in self.message for w in where):
            return f"{self.message} ({', '.join(where)})"
        return self.message


class InputError(XlogError):
    """A path that is missing, unreadable, or holds something that is not WAL."""


class ClusterMismatch(InputError):
    """Files of two different database systems (system identifiers) in one input."""


class WalFormatError(XlogError):
    """WAL bytes that cannot be decoded where a caller demanded a valid record."""


class RecordDataError(WalFormatError):
    """A record that passed its CRC but whose contents do not add up: a count or length read
    from it runs past the bytes it has. The record is reported and skipped; reading goes on."""


class UsageError(XlogError):
    """A bad option value (the CLI maps this to exit status 2)."""
