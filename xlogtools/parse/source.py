"""Where segments come from: segment files, pg_wal or data directories, archives.

A `WalSource` maps (timeline, segno) to one file and reads whole segments as bytes. It knows
the cluster (system identifier, segment size, block size, major version) from the first long
page header it reads, and the timeline histories it found. It never decodes records.

Recognised names (any directory depth up to 3, so archive layouts work as they are):
  SEG, SEG.partial, SEG[.partial].gz|.zst|.lz4|.bz2       plain, pg_receivewal, Barman, WAL-G
  SEG-<sha1>[.gz|.lz4|.zst|.bz2]                          pgBackRest
  TLI.history[.gz|...]                                    timeline history files
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from ..errors import ClusterMismatch, InputError
from ..lsn import Lsn, parse_segment_name, segment_name
from . import layout as L

_SEG_FILE_RE = re.compile(
    r"^(?P<name>[0-9A-F]{24})(?P<partial>\.partial)?(?:-[0-9a-f]{40})?"
    r"(?:\.(?P<comp>gz|zst|lz4|bz2|br|lzma|zstd))?$")
_HISTORY_RE = re.compile(r"^(?P<tli>[0-9A-F]{8})\.history(?:\.(?P<comp>gz|zst|lz4|bz2))?$")
_COMP_ALIASES = {"zstd": "zst"}
MAX_SCAN_DEPTH = 6


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a TLI.history file: timeline `tli` ended at `switchpoint`."""

    tli: int
    switchpoint: Lsn
    reason: str


@dataclass
class SegmentFile:
    path: Path
    name: str  # the 24-hex-digit segment name
    partial: bool
    compression: str | None
    size: int
    tli: int = 0
    segno: int = 0

    def preference(self) -> tuple[int, int, int]:
        # A complete plain file wins over a .partial, plain over compressed.
        return (1 if self.partial else 0, 1 if self.compression else 0, 0)


@dataclass(frozen=True)
class ClusterInfo:
    """What a long page header says about the cluster."""

    sysid: int
    seg_size: int
    block_size: int
    magic: int
    pg_major: int


class BinaryReader(Protocol):
    """What open_decompressed() returns: a binary file (plain, gzip, bz2, zstd or lz4)."""

    def read(self, size: int = -1, /) -> bytes: ...
    def __enter__(self) -> BinaryReader: ...
    def __exit__(self, exc_type: Any, exc: Any, tb: Any, /) -> Any: ...


def open_decompressed(path: Path, compression: str | None) -> BinaryReader:
    if compression is None:
        return open(path, "rb")
    if compression == "gz":
        import gzip

        return gzip.open(path, "rb")
    if compression == "bz2":
        import bz2

        return bz2.open(path, "rb")
    if compression == "zst":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    if compression == "lz4":
        import lz4.frame

        lz4_file: BinaryReader = lz4.frame.open(path, "rb")
        return lz4_file
    raise InputError(f"unsupported compression .{compression}", file=str(path))


def map_file(path: Path) -> Any:
    """An uncompressed file's bytes as a read-only mmap (bytes when empty): a segment read
    through it is not copied, only its pages that are looked at are touched."""
    import mmap

    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise InputError(f"could not read file \"{path}\": {exc.strerror or exc}", file=str(path)) from exc


def read_file_bytes(path: Path, compression: str | None, limit: int | None = None) -> bytes:
    try:
        with open_decompressed(path, compression) as f:
            return f.read() if limit is None else f.read(limit)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(f"could not read file \"{path}\": {exc.strerror or exc}", file=str(path)) from exc
    except Exception as exc:  # corrupt compressed stream
        raise InputError(f"could not decompress file \"{path}\": {exc}", file=str(path)) from exc


def parse_long_header(buf: bytes, path: str) -> ClusterInfo | None:
    """ClusterInfo from a segment's first page; None for an all-zero (never written) page."""
    if len(buf) < L.SIZE_OF_LONG_PHD:
        raise InputError(f"file \"{path}\" is too short to be a WAL segment ({len(buf)} bytes)",
                         file=path)
    magic, info, _tli, _addr, _rem, sysid, seg_size, blcksz = L.LONG_PAGE_HEADER.unpack_from(buf, 0)
    if magic == 0 and not any(buf[:L.SIZE_OF_LONG_PHD]):
        return None
    major = L.PAGE_MAGIC_TO_MAJOR.get(magic)
    if major is None:
        raise InputError(f"file \"{path}\" is not a WAL segment of PostgreSQL 13-18: invalid magic "
                         f"number {magic:04X} at offset 0", file=path, offset=0)
    if not info & L.XLP_LONG_HEADER:
        raise InputError(f"file \"{path}\" is not the start of a WAL segment: invalid info bits "
                         f"{info:04X} at offset 0", file=path, offset=0)
    if seg_size < (1 << 20) or seg_size > (1 << 30) or seg_size & (seg_size - 1):
        raise InputError(f"WAL segment size must be a power of two between 1 MB and 1 GB, but the "
                         f"WAL file \"{path}\" header specifies {seg_size} bytes", file=path)
    if blcksz < 1024 or blcksz > 65536 or blcksz & (blcksz - 1):
        raise InputError(f"file \"{path}\" has an invalid XLOG_BLCKSZ {blcksz} in its page header",
                         file=path)
    return ClusterInfo(sysid, seg_size, blcksz, magic, major)


def parse_history(text: str, path: str = "") -> list[HistoryEntry]:
    """readTimeLineHistory(): lines of 'parentTLI<ws>switchpoint<ws>reason', # comments."""
    out: list[HistoryEntry] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split(None, 2)
        try:
            tli = int(parts[0])
            sp = Lsn(parts[1])
        except (ValueError, IndexError) as exc:
            raise InputError(f"syntax error in history file \"{path}\" line {lineno}: {line!r}",
                             file=path) from exc
        if out and tli <= out[-1].tli:
            raise InputError(f"invalid data in history file \"{path}\": timeline IDs must be in "
                             f"increasing sequence", file=path)
        out.append(HistoryEntry(tli, sp, parts[2] if len(parts) > 2 else ""))
    return out


@dataclass
class WalSource:
    """A set of segment files of one cluster, indexed by (timeline, segno)."""

    inputs: list[Path]
    candidates: list[SegmentFile] = field(default_factory=list)
    history_files: dict[int, Path] = field(default_factory=dict)
    cluster: ClusterInfo | None = None
    files: dict[tuple[int, int], SegmentFile] = field(default_factory=dict)
    histories: dict[int, list[HistoryEntry]] = field(default_factory=dict)
    read_paths: set[Path] = field(default_factory=set)  # every segment file read (custody)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def open(cls, paths: list[str | os.PathLike[str]] | None = None) -> Self:
        if not paths:
            pgdata = os.environ.get("PGDATA")
            if not pgdata:
                raise InputError("no input given and PGDATA is not set: name segment files or a "
                                 "pg_wal or data directory")
            paths = [pgdata]
        src = cls([Path(p) for p in paths])
        for p in src.inputs:
            src._add_path(p)
        if not src.candidates:
            raise InputError("no WAL segment files found in " + ", ".join(map(str, src.inputs)))
        src._identify_cluster()
        src._index()
        return src

    def _add_path(self, p: Path) -> None:
        if not p.exists():
            raise InputError(f"could not open \"{p}\": No such file or directory", file=str(p))
        if p.is_dir():
            if (p / "pg_wal").is_dir():  # a data directory means its pg_wal
                p = p / "pg_wal"
            elif (p / "pg_xlog").is_dir():
                raise InputError(f"\"{p}\" is a data directory of PostgreSQL 9.x, which is not "
                                 "supported (13-18)", file=str(p))
            self._scan_dir(p, 0)
            return
        if not self._add_file(p, explicit=True):
            raise InputError(f"\"{p}\" is not a WAL segment file (expected a 24-hex-digit name "
                             "like 000000010000000000000001, or a .history file)", file=str(p))

    def _scan_dir(self, d: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            raise InputError(f"could not open directory \"{d}\": {exc.strerror}", file=str(d)) from exc
        for e in entries:
            if e.is_dir(follow_symlinks=True):
                if depth < MAX_SCAN_DEPTH and e.name not in ("archive_status", "summaries"):
                    self._scan_dir(Path(e.path), depth + 1)
            elif e.is_file():
                self._add_file(Path(e.path), explicit=False)

    def _add_file(self, p: Path, explicit: bool) -> bool:
        name = p.name
        m = _SEG_FILE_RE.match(name)
        if m:
            comp = m.group("comp")
            comp = _COMP_ALIASES.get(comp, comp) if comp else None
            if comp in ("br", "lzma"):
                if explicit:
                    raise InputError(f"\"{p}\": .{comp} compressed segments are not supported",
                                     file=str(p))
                return True
            try:
                size = p.stat().st_size
            except OSError as exc:
                raise InputError(f"could not stat \"{p}\": {exc.strerror}", file=str(p)) from exc
            self.candidates.append(SegmentFile(p, m.group("name"), bool(m.group("partial")), comp, size))
            return True
        m = _HISTORY_RE.match(name)
        if m:
            self.history_files[int(m.group("tli"), 16)] = p
            return True
        return False

    def _identify_cluster(self) -> None:
        """Read the first non-empty long header; every plain file is then checked against it."""
        ordered = sorted(self.candidates, key=lambda c: (c.name[8:], c.name[:8], c.preference()))
        for c in ordered:
            head = self._head(c)
            if head is None:
                continue
            info = parse_long_header(head, str(c.path))
            if info is not None:
                self.cluster = info
                break
        if self.cluster is None:
            raise InputError("no WAL found: every segment file is empty or all zeros ("
                             + ", ".join(str(c.path) for c in ordered[:3]) + ")")
        # Cheap eager check of plain files (40 bytes each); compressed ones are checked on read.
        for c in ordered:
            if c.compression is None:
                self.check_cluster(c, self._head(c))

    def _head(self, c: SegmentFile) -> bytes | None:
        if c.compression is None and c.size < L.SIZE_OF_LONG_PHD:
            return None
        return read_file_bytes(c.path, c.compression, L.SIZE_OF_LONG_PHD)

    def check_cluster(self, c: SegmentFile, head: bytes | None) -> None:
        if not head or len(head) < L.SIZE_OF_LONG_PHD:
            return
        info = parse_long_header(head, str(c.path))
        if info is None:
            return
        assert self.cluster is not None
        cl = self.cluster
        if info.sysid != cl.sysid:
            raise ClusterMismatch(
                f"WAL file \"{c.path}\" is from different database system: its system identifier "
                f"is {info.sysid}, other files have {cl.sysid}", file=str(c.path), offset=0)
        if info.seg_size != cl.seg_size or info.block_size != cl.block_size:
            raise ClusterMismatch(
                f"WAL file \"{c.path}\" has segment size {info.seg_size} and block size "
                f"{info.block_size}, other files have {cl.seg_size} and {cl.block_size}",
                file=str(c.path), offset=0)
        if c.compression is None and not c.partial and c.size > cl.seg_size:
            raise InputError(f"WAL file \"{c.path}\" is {c.size} bytes, larger than the segment "
                             f"size {cl.seg_size} given in its header", file=str(c.path))

    def _index(self) -> None:
        assert self.cluster is not None
        seg_size = self.cluster.seg_size
        for c in self.candidates:
            c.tli, c.segno = parse_segment_name(c.name, seg_size)
            key = (c.tli, c.segno)
            cur = self.files.get(key)
            if cur is None or c.preference() < cur.preference():
                self.files[key] = c
        for tli, p in self.history_files.items():
            text = read_file_bytes(p, _HISTORY_RE.match(p.name).group("comp")).decode("utf-8", "replace")  # type: ignore[union-attr]
            self.histories[tli] = parse_history(text, str(p))

    # -- queries --------------------------------------------------------------------------
    @property
    def seg_size(self) -> int:
        assert self.cluster is not None
        return self.cluster.seg_size

    @property
    def block_size(self) -> int:
        assert self.cluster is not None
        return self.cluster.block_size

    def timelines(self) -> list[int]:
        return sorted({t for t, _ in self.files} | set(self.histories))

    def segnos(self, tli: int) -> list[int]:
        return sorted(s for t, s in self.files if t == tli)

    def expected_timelines(self, target: int) -> list[tuple[int, Lsn, Lsn | None]]:
        """(tli, begin, end) from the oldest ancestor to `target` (readTimeLineHistory)."""
        hist = self.histories.get(target, [])
        out: list[tuple[int, Lsn, Lsn | None]] = []
        begin = Lsn(0)
        for h in hist:
            out.append((h.tli, begin, h.switchpoint))
            begin = h.switchpoint
        out.append((target, begin, None))
        return out

    def timeline_of_segment(self, segno: int, expected: list[tuple[int, Lsn, Lsn | None]]) -> int:
        """The newest expected timeline whose first segment is at or before segno
        (XLogFileReadAnyTLI): the segment holding a switch point is read from the new timeline."""
        seg_size = self.seg_size
        for tli, begin, _end in reversed(expected):
            if int(begin) // seg_size <= segno:
                return tli
        return expected[0][0]

    def segment(self, tli: int, segno: int) -> SegmentFile | None:
        return self.files.get((tli, segno))

    def read(self, c: SegmentFile) -> bytes:
        data = read_file_bytes(c.path, c.compression)
        self.read_paths.add(c.path)
        if c.compression is not None:
            self.check_cluster(c, data[:L.SIZE_OF_LONG_PHD])
        return data

    def name_of(self, tli: int, segno: int) -> str:
        return segment_name(tli, segno, self.seg_size)


class MemorySource(WalSource):
    """A WalSource over segments held in memory: {(timeline, segno): buffer}. A buffer is the
    segment's bytes from its start (bytes, or an mmap, which slices to bytes without copying
    the whole segment); a short one reads as a segment cut off there."""

    def __init__(self, cluster: ClusterInfo, segments: dict[tuple[int, int], Any]) -> None:
        super().__init__(inputs=[])
        self.cluster = cluster
        self._buffers = segments
        for tli, segno in segments:
            name = segment_name(tli, segno, cluster.seg_size)
            self.files[(tli, segno)] = SegmentFile(Path(name), name, True, None,
                                                   cluster.seg_size, tli, segno)

    def read(self, c: SegmentFile) -> bytes:
        return self._buffers[(c.tli, c.segno)]  # type: ignore[no-any-return]
