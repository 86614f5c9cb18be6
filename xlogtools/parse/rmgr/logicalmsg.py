"""LogicalMessage (RM_LOGICALMSG_ID): pg_logical_emit_message(), replication/message.h,
PostgreSQL 13-18.  14 started printing the prefix and the payload bytes."""
from __future__ import annotations

from ..record import Record
from ._util import main, table_identify

MESSAGE = 0x00

identify = table_identify({MESSAGE: "MESSAGE"})


def describe(rec: Record) -> str:
    if rec.info & 0xF0 != MESSAGE:
        return ""
    d = main(rec)  # dbId 0, transactional 4, prefix_size 8, message_size 16, message 24
    transactional = d.u8(4) != 0
    prefix_size, message_size = d.u64(8), d.u64(16)
    if rec.pg_major < 14:
        kind = "transactional" if transactional else "nontransactional"
        return f"{kind} message size {message_size} bytes"
    kind = "transactional" if transactional else "non-transactional"
    prefix = d.cstring(24)
    off = 24 + prefix_size
    payload = d.b[off:off + message_size]  # message_size is a 64-bit length from the record
    return (f'{kind}, prefix "{prefix}"; payload ({message_size} bytes): '
            + " ".join(f"{b:02X}" for b in payload) + d.past_end(off, message_size, 1))
