"""The archive directory a receiver writes: segment files as PostgreSQL names them, written
as SEG.partial (padded to the segment size first) and renamed to SEG when complete, history
files, optional compression of completed segments, and the streaming start found from what
is already there (pg_receivewal's open_walfile/close_walfile/FindStreamingStart).

Durability: a position is reported as flushed only after the file's data (fdatasync) and the
directory entry (fsync of DIR after creating a file and after each rename) are on disk.

`verifier.StreamVerifier` decodes every record as it arrives with the shared reader, so
`receive --verify` stops at the first bad record.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ClusterMismatch, InputError, XlogError
from ..lsn import Lsn, parse_segment_name, segment_name
from ..parse import layout as L
from ..parse.source import parse_long_header, read_file_bytes
from .verifier import StreamVerifier

log = logging.getLogger("xlogtools.stream")

COMPRESSIONS = {"gzip": "gz", "lz4": "lz4", "zstd": "zst"}
_DEFAULT_LEVEL = {"gzip": 6, "lz4": 1, "zstd": 3}
_NAME_RE = re.compile(r"^([0-9A-F]{24})(\.partial)?(?:\.(gz|lz4|zst))?(\.partial)?$")
_TMP_RE = re.compile(r"^(?:[0-9A-F]{24}(?:\.(?:gz|lz4|zst))?|[0-9A-F]{8}\.history)\.tmp$")
LOCK_NAME = ".xlogtools-receive.lock"
_lsn = int.__new__  # _lsn(Lsn, n): an Lsn without Lsn.__new__'s checks (per-message paths)


class ArchiveError(XlogError):
    """The archive directory cannot be written or holds something we must not touch.

    `errno`: the OS error behind it (ENOSPC, EIO, EROFS, ...), or None. Given, or taken from
    the OSError being handled when it was raised."""

    def __init__(self, message: str, *, errno: int | None = None, **where: Any) -> None:
        super().__init__(message, **where)
        self._errno = errno

    @property
    def errno(self) -> int | None:
        if self._errno is not None:
            return self._errno
        ctx = self.__cause__ or self.__context__
        return ctx.errno if isinstance(ctx, OSError) else None

    @property
    def storage_full(self) -> bool:
        """The archive's storage cannot take more now (full, over quota, read-only, I/O
        errors): waiting and writing again may work, nothing about the WAL is wrong."""
        return self.errno in STORAGE_ERRNOS


# errno values of a storage that may take writes again later (a full disk freed, a file
# system remounted read-write, a device back): the receiver waits and retries on them.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ArchiveFile:
    path: Path
    tli: int
    segno: int
    partial: bool
    compression: str | None  # file suffix gz|lz4|zst


class WalArchive:
    """Writes one replication stream into `directory` (which must exist).

    seg_size/sysid come from the server (SHOW wal_segment_size, IDENTIFY_SYSTEM); `sync`
    False skips every fsync (tests only); `compression` is gzip|lz4|zstd for completed
    segments; `verify` decodes every record as it arrives (StreamVerifier); `zero_fill`
    writes new segments full of zeros instead of only reserving their space (cheaper
    fdatasyncs afterwards: for --synchronous).
    """

    def __init__(self, directory: str | os.PathLike[str], *, seg_size: int, sysid: int,
                 sync: bool = True, compression: str | None = None,
                 compression_level: int | None = None, verify: bool = True,
                 zero_fill: bool = False) -> None:
        self.dir = Path(directory)
        self.seg_size = seg_size
        self.sysid = sysid
        self.sync = sync
        if compression is not None and compression not in COMPRESSIONS:
            raise ArchiveError(f"unknown compression method \"{compression}\" "
                               f"(use {', '.join(COMPRESSIONS)})")
        self.compression = compression
        self.compression_level = compression_level
        self.zero_fill = zero_fill
        self.verifier = StreamVerifier(seg_size, sysid) if verify else None
        self.timeline = 0
        self._fd: int | None = None
        self._segno = -1
        self._name = ""
        self._pos = 0  # end of what was written (valid only while a file is open)
        self.written = Lsn(0)
        self.flushed = Lsn(0)
        self._dirty = False
        self._lock_fd: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: list[Future[None]] = []
        self.segments_completed = 0

    # -- opening the directory --------------------------------------------------------------
    def open(self) -> tuple[Lsn, int] | None:
        """Lock DIR, check every WAL file in it belongs to this cluster, clean our temporary
        files; the streaming start (segment start LSN, timeline) found in DIR, or None."""
        if not self.dir.is_dir():
            raise ArchiveError(f"could not access directory \"{self.dir}\": "
                               + ("Not a directory" if self.dir.exists()
                                  else "No such file or directory"))
        self._lock()
        files = self.scan()
        self._check_cluster(files)
        for e in os.scandir(self.dir):
            if _TMP_RE.match(e.name):  # an interrupted history write or compression
                plain = self.dir / e.name.split(".")[0]
                os.unlink(e.path)
                if self.compression and plain.exists():
                    self._queue_compression(plain)
        return self.streaming_start(files)

    def _lock(self) -> None:
        try:
            fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ArchiveError(f"could not write to directory \"{self.dir}\": "
                               f"{exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ArchiveError(f"directory \"{self.dir}\" is in use by another xlogtools "
                               "receive") from None
        self._lock_fd = fd

    def scan(self) -> list[ArchiveFile]:
        out = []
        for e in os.scandir(self.dir):
            m = _NAME_RE.match(e.name)
            if not m or not e.is_file():
                continue
            try:
                tli, segno = parse_segment_name(m.group(1), self.seg_size)
            except ValueError:
                continue
            partial = bool(m.group(2) or m.group(4))
            out.append(ArchiveFile(Path(e.path), tli, segno, partial, m.group(3)))
        return out

    def _check_cluster(self, files: list[ArchiveFile]) -> None:
        """Every plain file's long header, and the newest compressed ones', must name the
        server's system identifier and segment size: never mix clusters in one archive."""
        compressed = sorted((f for f in files if f.compression), key=lambda f: f.segno)[-3:]
        for f in [f for f in files if not f.compression] + compressed:
            try:
                head = read_file_bytes(f.path, f.compression, L.SIZE_OF_LONG_PHD)
                info = parse_long_header(head, str(f.path)) \
                    if len(head) >= L.SIZE_OF_LONG_PHD else None
            except InputError as exc:
                if f.partial:
                    continue  # a .partial may be all zeros or torn; it is streamed again
                raise ArchiveError(f"{exc} (in the archive directory; move it away)") from None
            if info is None:
                continue
            if info.sysid != self.sysid:
                raise ClusterMismatch(
                    f"directory \"{self.dir}\" holds WAL of another database system: "
                    f"\"{f.path.name}\" has system identifier {info.sysid}, the server has "
                    f"{self.sysid}", file=str(f.path))
            if info.seg_size != self.seg_size:
                raise ClusterMismatch(
                    f"directory \"{self.dir}\" holds WAL with another segment size: "
                    f"\"{f.path.name}\" has {info.seg_size} bytes, the server uses "
                    f"{self.seg_size}", file=str(f.path))

    def streaming_start(self, files: list[ArchiveFile]) -> tuple[Lsn, int] | None:
        """FindStreamingStart(): after the newest complete segment, or at the start of the
        newest .partial one (it is streamed again whole)."""
        best: tuple[int, int, bool] | None = None
        for f in files:
            if not f.partial and not f.compression:
                size = f.path.stat().st_size
                if size != self.seg_size:
                    log.warning("segment file \"%s\" has incorrect size %d, skipping",
                                f.path.name, size)
                    continue
            key = (f.segno, f.tli, not f.partial)
            if best is None or key > best:
                best = key
        if best is None:
            return None
        segno, tli, complete = best
        if complete:
            segno += 1
        return Lsn(segno * self.seg_size), tli

    # -- history files ------------------------------------------------------------------------
    def has_history(self, tli: int) -> bool:
        return tli == 1 or (self.dir / f"{tli:08X}.history").exists()

    def _write_durably(self, path: Path, content: bytes) -> None:
        """path.tmp written and fsynced, renamed to path, DIR fsynced (OSError on failure):
        a reader of DIR sees the whole file or none of it, after a crash too."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, memoryview(content), 0)
            if self.sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        if self.sync:
            _fsync_dir(self.dir)

    def write_history(self, tli: int, filename: str, content: bytes) -> None:
        """writeTimeLineHistoryFile(): temp file, fsync, rename, fsync DIR."""
        expect = f"{tli:08X}.history"
        if filename != expect:
            raise ArchiveError(f"server reported unexpected history file name for timeline "
                               f"{tli}: {filename}")
        path = self.dir / expect
        try:
            self._write_durably(path, content)
        except OSError as exc:
            raise ArchiveError(f"could not write timeline history file \"{path}\": "
                               f"{exc.strerror}", file=str(path)) from None

    # -- segments -----------------------------------------------------------------------------
    def set_timeline(self, tli: int) -> None:
        """Streaming continues on `tli`: the open segment (an old timeline's) is closed."""
        if self._fd is not None:
            self.close_segment()
        self.timeline = tli
        if self.verifier is not None:
            self.verifier.timeline = tli

    def write(self, start: int, data: bytes) -> None:
        """Write the WAL bytes of one XLogData message at `start`."""
        seg_size = self.seg_size
        fd = self._fd
        if fd is not None and start == self._pos:
            seg_off = start % seg_size
            n = len(data)
            if seg_off + n < seg_size:  # the usual case: inside the open segment
                try:
                    w = os.pwrite(fd, data, seg_off)
                    if w != n:  # a short write (not seen on Linux for files): the rest
                        _write_all(fd, memoryview(data)[w:], seg_off + w)
                except OSError as exc:
                    raise ArchiveError(f"could not write to file \"{self._name}.partial\": "
                                       f"{exc.strerror}", file=str(self.dir / self._name),
                                       lsn=Lsn(start)) from None
                if self.verifier is not None:
                    self.verifier.feed(start // seg_size, seg_off, data)  # type: ignore[arg-type]
                self._pos = pos = start + n
                self._dirty = True
                self.written = _lsn(Lsn, pos)
                return
        if self._fd is None:
            if start % seg_size:
                raise ArchiveError(f"received WAL for offset {start % seg_size} with no file "
                                   "open", lsn=Lsn(start))
        elif start != self._pos:
            raise ArchiveError(f"got WAL data offset {start % seg_size:08x}, expected "
                               f"{self._pos % seg_size:08x}", lsn=Lsn(start))
        mv = memoryview(data)
        off, n = 0, len(mv)
        pos = start
        while off < n:
            if self._fd is None:
                self._open(pos // seg_size)
            seg_off = pos % seg_size
            chunk = min(n - off, seg_size - seg_off)
            piece = mv[off:off + chunk]
            try:
                _write_all(self._fd, piece, seg_off)  # type: ignore[arg-type]
            except OSError as exc:
                raise ArchiveError(f"could not write to file \"{self._name}.partial\": "
                                   f"{exc.strerror}", file=str(self.dir / self._name),
                                   lsn=Lsn(pos)) from None
            if self.verifier is not None:
                self.verifier.feed(pos // seg_size, seg_off, piece)
            off += chunk
            pos += chunk
            self._pos = pos
            self._dirty = True
            if pos % seg_size == 0:
                self._complete()
        self.written = _lsn(Lsn, pos)

    def open_segment_target(self) -> tuple[int, int] | None:
        """(descriptor, first LSN) of the open segment, for a caller that writes WAL into it
        itself (the synchronous receiver's C loop) and then calls `written_by_caller`; None
        when no segment is open or the verifier needs each write handed to it."""
        if self._fd is None or self._pos == self._segno * self.seg_size:
            return None  # (the first bytes of a segment go through write(): header checks)
        if self.verifier is not None and not self.verifier.reads_file(self._segno):
            return None
        return self._fd, self._segno * self.seg_size

    @property
    def open_file_name(self) -> str:
        """The open segment's name (its file is NAME.partial)."""
        return self._name

    def written_by_caller(self, pos: int, flushed: int) -> None:
        """WAL up to `pos` was written into the open segment (see open_segment_target), and
        up to `flushed` fdatasync'ed."""
        if pos == self._pos:
            return
        if self.verifier is not None:
            self.verifier.received_up_to(self._segno, pos - self._segno * self.seg_size)
        self._pos = pos
        self.written = _lsn(Lsn, pos)
        if flushed > self.flushed:
            self.flushed = _lsn(Lsn, flushed)
        self._dirty = self.flushed < pos

    def _open(self, segno: int) -> None:
        name = segment_name(self.timeline, segno, self.seg_size)
        path = self.dir / (name + ".partial")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            size = os.fstat(fd).st_size
            if size != self.seg_size:
                # A new file (or one torn by a crash while being padded): reserve the whole
                # segment now, as PostgreSQL does, so a full disk shows up here and not mid-way.
                if size > self.seg_size:
                    os.ftruncate(fd, self.seg_size)
                if self.zero_fill:
                    # Written zeros, as PostgreSQL's wal_init_zero: an fdatasync after each
                    # small write then has no extent to convert (no journal commit) on ext4
                    # and XFS, which is what a synchronous receiver does all the time.
                    zeros = bytes(min(self.seg_size, 1 << 20))
                    for off in range(0, self.seg_size, len(zeros)):
                        _write_all(fd, memoryview(zeros), off)
                else:
                    os.posix_fallocate(fd, 0, self.seg_size)
                if self.sync:
                    os.fsync(fd)
                    _fsync_dir(self.dir)
        except OSError as exc:
            raise ArchiveError(f"could not create file \"{path}\": {exc.strerror}",
                               file=str(path)) from None
        self._fd = fd
        self._segno = segno
        self._name = name
        self._pos = segno * self.seg_size
        if self.verifier is not None:
            self.verifier.start_segment(segno, path)

    def _complete(self) -> None:
        """The segment is full: fsync, close, rename SEG.partial -> SEG, fsync DIR."""
        fd, name = self._fd, self._name
        assert fd is not None
        try:
            if self.sync:
                os.fdatasync(fd)
            os.close(fd)
            self._fd = None
            os.rename(self.dir / (name + ".partial"), self.dir / name)
            if self.sync:
                _fsync_dir(self.dir)
        except OSError as exc:
            raise ArchiveError(f"could not finish segment \"{name}\": {exc.strerror}",
                               file=str(self.dir / name)) from None
        self._dirty = False
        self.flushed = Lsn(self._pos)
        self.segments_completed += 1
        log.info("finished segment at %s (timeline %d)", Lsn(self._pos), self.timeline)
        if self.compression:
            self._queue_compression(self.dir / name)

    def flush(self) -> Lsn:
        """Make everything written durable; the new flush position."""
        if self._fd is not None and self._dirty:
            if self.sync:
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    raise ArchiveError(f"could not fsync file \"{self._name}.partial\": "
                                       f"{exc.strerror}") from None
            self._dirty = False
            self.flushed = _lsn(Lsn, self._pos)
        return self.flushed

    def close_segment(self) -> None:
        """Flush and close the open segment; an incomplete one stays SEG.partial."""
        if self._fd is None:
            return
        self.flush()
        os.close(self._fd)
        self._fd = None
        log.info("not renaming \"%s.partial\", segment is not complete", self._name)

    def abandon_segment(self) -> None:
        """Close the open segment without flushing it (after its storage refused a write or
        an fsync: what the kernel holds of it may not be what was written). The flush
        position stays the last one made durable; streaming again starts at the segment's
        beginning, which rewrites it whole (the file stays SEG.partial)."""
        fd, self._fd = self._fd, None
        self._dirty = False
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
            log.info("left \"%s.partial\" to be streamed again", self._name)

    def close(self) -> None:
        """Flush, close, finish queued compression, release the directory lock."""
        try:
            self.close_segment()
            self.wait_compression()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            if self.verifier is not None:
                self.verifier.close()

    # -- compression ----------------------------------------------------------------------------
    def _queue_compression(self, path: Path) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="xlogtools-compress")
        self._jobs = [j for j in self._jobs if not j.done() or j.exception()]
        self._jobs.append(self._pool.submit(self._compress, path))

    def _compress(self, path: Path) -> None:
        """SEG -> SEG.ext.tmp, fsync, rename to SEG.ext, fsync DIR, remove SEG (the
        compressed file is complete and durable before the plain one goes)."""
        method = self.compression
        assert method is not None
        ext = COMPRESSIONS[method]
        level = self.compression_level or _DEFAULT_LEVEL[method]
        raw = path.read_bytes()
        if method == "gzip":
            import zlib

            c = zlib.compressobj(level, zlib.DEFLATED, 31)  # gzip wrapper
            out = c.compress(raw) + c.flush()
        elif method == "lz4":
            import lz4.frame

            out = lz4.frame.compress(raw, compression_level=level)
        else:
            import zstandard

            out = zstandard.ZstdCompressor(level=level).compress(raw)
        self._write_durably(path.with_name(f"{path.name}.{ext}"), out)
        os.unlink(path)
        if self.sync:
            _fsync_dir(self.dir)

    def wait_compression(self) -> None:
        for j in self._jobs:
            exc = j.exception()
            if exc is not None:
                raise ArchiveError(f"could not compress a segment: {exc}") from None
        self._jobs = []


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        data = data[n:]
        offset += n
