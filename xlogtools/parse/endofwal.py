"""Where and why reading WAL stops: the reader's result when it cannot go on (EndOfWal, with
PostgreSQL's wording, as xlogreader.c reports it) and the stop a failed check raises inside
the reader to get there."""
from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import XlogError
from ..lsn import Lsn


class EndReason(str, enum.Enum):
    ZERO_PAGE = "zero_page"
    INVALID_LENGTH = "invalid_length"
    CRC_MISMATCH = "crc_mismatch"
    INVALID_HEADER = "invalid_header"
    STALE_PAGE_ADDRESS = "stale_page_address"
    MISSING_SEGMENT = "missing_segment"
    TRUNCATED_SEGMENT = "truncated_segment"
    PREV_LINK_MISMATCH = "prev_link_mismatch"
    INVALID_RECORD = "invalid_record"
    MISSING_CONTRECORD = "missing_contrecord"
    END_LSN_REACHED = "end_lsn_reached"  # the caller's end position, not damage

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class EndOfWal:
    """Why and where reading stopped."""

    reason: EndReason
    lsn: Lsn  # where the next record would start: the end of the last valid record
    last_record_lsn: Lsn | None
    error_lsn: Lsn  # the position the message names (record or page)
    message: str  # PostgreSQL's wording
    segment: str | None = None  # segment file name the damage is in
    file: str | None = None
    offset: int | None = None  # byte offset in that segment
    timeline: int = 0

    @property
    def is_damage(self) -> bool:
        return self.reason is not EndReason.END_LSN_REACHED

    def waldump_message(self) -> str:
        """The message pg_waldump ends with when it cannot read further."""
        if self.last_record_lsn is None:
            return f"could not find a valid record after {self.lsn}"
        return f"error in WAL record at {self.last_record_lsn}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason.value, "end_lsn": str(self.lsn),
            "last_record_lsn": str(self.last_record_lsn) if self.last_record_lsn is not None else None,
            "error_lsn": str(self.error_lsn), "message": self.message, "segment": self.segment,
            "file": self.file, "offset": self.offset, "timeline": self.timeline,
        }


class WalStop(XlogError):
    """Reading stops here: raised where a check fails (a page header, a record header, a
    missing segment) and caught by the reader, which turns it into its EndOfWal. Never seen
    by a caller of the reader."""

    def __init__(self, reason: EndReason, error_lsn: int, message: str,
                 offset: int | None = None) -> None:
        super().__init__(message, offset=offset, lsn=Lsn(error_lsn))
        self.reason = reason
        self.error_lsn = Lsn(error_lsn)
