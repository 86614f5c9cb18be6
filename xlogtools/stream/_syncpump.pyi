# Stub of the C extension _syncpump.c (the per-commit loop of a synchronous receiver).
from _typeshed import WriteableBuffer

# (stop, have, pos, wal_end, unsent, err, at, rounds, flushed); at: the failing call ("" when none)
def pump(sock: int, buf: WriteableBuffer, have: int, segfd: int, seg_base: int, seg_size: int,
         pos: int, flush_pos: int, endpos: int, deadline_us: int = 0, max_bytes: int = 0, /
         ) -> tuple[int, int, int, int, bytes, int, str, int, int]: ...
