"""What a receiver takes (ReceiveOptions), returns (ReceiveResult), tells its progress hook
(ReceiverProgress), the error it stops on (ReceiveError), and how often it verifies
(VERIFY_*).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError, XlogError
from ..lsn import Lsn

# Verify at least every VERIFY_BATCH bytes or VERIFY_DELAY seconds after WAL arrived. Each
# run of the reader has a fixed cost, so not after every message; but a run holds up the
# messages behind it, so a synchronous receiver (commits wait for it) runs small ones.
VERIFY_BATCH = 1 << 20
VERIFY_DELAY = 0.1
VERIFY_BATCH_SYNC = 64 << 10
VERIFY_DELAY_SYNC = 0.02


class ReceiveError(XlogError):
    """The receiver stopped on an error it will not retry."""


@dataclass
class ReceiveOptions:
    """What `xlogtools receive` takes (see its --help for each option)."""

    directory: str | os.PathLike[str]
    conninfo: str | None = None
    host: str | None = None
    port: str | None = None
    user: str | None = None
    password_prompt: bool = False  # -W: ask before connecting
    slot: str | None = None
    create_slot: bool = False
    drop_slot: bool = False
    if_not_exists: bool = False
    synchronous: bool = False
    status_interval: float = 10.0
    endpos: Lsn | None = None
    no_loop: bool = False
    compression: str | None = None
    compression_level: int | None = None
    verify: bool = True
    sync: bool = True  # False: --no-sync (tests only)
    verbose: bool = False
    status_line: bool | None = None  # None: when stderr is a terminal
    fsync_interval: float | None = None  # seconds: flush at most this often, report flushed
    metrics: str | None = None  # [HOST:]PORT: serve Prometheus text (loopback by default)
    status_file: str | Path | None = None  # write the same as JSON here, atomically
    environ: dict[str, str] | None = None
    # For a relay (serve --upstream), which sends standbys only what is durable in DIR:
    flush_batches: bool = False  # fsync after every batch of messages, as a walreceiver does
    retry_first: bool = False  # retry a first connection that found no server (not a refusal)
    ensure_slot: bool = False  # create the slot (if missing) on the first connection, then stream

    def validate(self) -> None:
        if (self.create_slot or self.drop_slot) and not self.slot:
            raise UsageError(f"--{'create' if self.create_slot else 'drop'}-slot needs a slot to "
                             "be specified using --slot")
        if self.create_slot and self.drop_slot:
            raise UsageError("cannot use --create-slot together with --drop-slot")
        if self.ensure_slot and not self.slot:
            raise UsageError("--create-slot needs a slot to be specified using --slot")
        if self.if_not_exists and not self.create_slot:
            raise UsageError("--if-not-exists needs --create-slot")
        if self.synchronous and not self.sync:
            raise UsageError("cannot use --synchronous together with --no-sync")
        if self.fsync_interval is not None:
            if self.synchronous:
                raise UsageError("cannot use --fsync-interval together with --synchronous "
                                 "(which flushes every write)")
            if not self.sync:
                raise UsageError("cannot use --fsync-interval together with --no-sync")
            if not self.fsync_interval > 0:
                raise UsageError(f"invalid fsync interval \"{self.fsync_interval}\"")
        if self.slot is not None and not valid_slot_name(self.slot):
            raise UsageError(f"replication slot name \"{self.slot}\" is invalid: it may contain "
                             "only lower case letters, numbers and the underscore, at most 63 "
                             "characters")
        if self.status_interval < 0:
            raise UsageError(f"invalid status interval \"{self.status_interval}\"")


def parse_compression(value: str | None) -> tuple[str | None, int | None]:
    """(compression, compression_level) of ReceiveOptions from pg_receivewal's -Z text:
    METHOD[:LEVEL | :level=LEVEL] or a gzip level 0-9 (0 and 'none': off)."""
    if value is None:
        return None, None
    v = value.strip().lower()
    if v.isdigit():
        level = int(v)
        if level > 9:
            raise UsageError(f"invalid compression level \"{value}\" (0-9 means gzip)")
        return ("gzip", level) if level else (None, None)
    m = re.fullmatch(r"(gzip|lz4|zstd|none)(?::(?:level=)?(\d+))?", v)
    if not m:
        raise UsageError(f"invalid compression specification \"{value}\": use gzip, lz4, zstd "
                         "or none, optionally with :LEVEL")
    method = None if m.group(1) == "none" else m.group(1)
    return method, int(m.group(2)) if m.group(2) and method else None


def valid_slot_name(name: str) -> bool:
    return 0 < len(name) < 64 and all(c.islower() and c.isascii() or c.isdigit() or c == "_"
                                      for c in name)


@dataclass
class ReceiveResult:
    start: Lsn | None = None  # where streaming began
    flushed: Lsn = Lsn(0)  # end of what is durably in DIR
    timeline: int = 0
    segments_completed: int = 0
    records_verified: int = 0
    bytes_received: int = 0
    stop_reason: str = ""  # endpos | signal | slot-created | slot-dropped | nothing-to-do
    reconnects: int = 0
    c_loop_rounds: int = 0  # synchronous rounds done by the C loop (syncpump)
    timelines: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class ReceiverProgress:
    """What the receiver hands its `on_progress` hook: after a state change, and after every
    batch that made more WAL durable. A relay's walsender sends up to `flushed`."""

    state: str  # connecting | connected | streaming | disconnected | stopped
    timeline: int  # the timeline being written (0: none yet)
    received: Lsn  # written to DIR
    flushed: Lsn  # durable in DIR (fdatasync'ed, the directory entry too)
    server_end: Lsn  # the server's WAL end as it last reported it
    server: str = ""  # host:port (or socket) of the connection, once connected
    detail: str = ""  # why it is disconnected / stopped


__all__ = ["VERIFY_BATCH", "VERIFY_BATCH_SYNC", "VERIFY_DELAY", "VERIFY_DELAY_SYNC",
           "ReceiveError", "ReceiveOptions", "ReceiveResult", "ReceiverProgress",
           "parse_compression", "valid_slot_name"]
