"""The files of a data directory read with no server: pg_control (catalog/pg_control.h), the
relation map files (utils/cache/relmapper.c), commit status in pg_xact (access/transam/clog.c),
page checksums (storage/checksum_impl.h) and the committed tuples of a heap file, PostgreSQL
13-18.

Everything is opened read-only and nothing is ever written into the directory. A page whose
checksum fails is skipped and reported in `DataDir.problems`, never used. Visibility is the
state the files show (see `DataDir.tuple_visible`); a transaction whose commit reached only the
WAL (a crash before the next checkpoint wrote pg_xact) counts as not committed.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from .pages import PageFormatError, parse_page

SUPPORTED_MAJORS = range(13, 19)
FLOATFORMAT_VALUE = 1234567.0
GLOBALTABLESPACE_OID = 1664
DEFAULTTABLESPACE_OID = 1663

# t_infomask bits of access/htup_details.h that decide visibility
HEAP_XMAX_KEYSHR_LOCK = 0x0010
HEAP_XMAX_EXCL_LOCK = 0x0040
HEAP_XMAX_LOCK_ONLY = 0x0080
HEAP_XMIN_COMMITTED = 0x0100
HEAP_XMIN_INVALID = 0x0200
HEAP_XMIN_FROZEN = HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID
HEAP_XMAX_COMMITTED = 0x0400
HEAP_XMAX_INVALID = 0x0800
HEAP_XMAX_IS_MULTI = 0x1000
HEAP_LOCK_MASK = HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK

# clog.c: two status bits per transaction, 32 pages of BLCKSZ per segment file
TRANSACTION_STATUS_IN_PROGRESS = 0
TRANSACTION_STATUS_COMMITTED = 1
TRANSACTION_STATUS_ABORTED = 2
TRANSACTION_STATUS_SUB_COMMITTED = 3
SLRU_PAGES_PER_SEGMENT = 32
FIRST_NORMAL_TRANSACTION_ID = 3


@dataclass(frozen=True)
class ControlFile:
    """The fields of ControlFileData the catalog needs."""

    system_identifier: int
    pg_control_version: int
    catalog_version_no: int
    state: int
    time: int  # pg_time_t of the last pg_control update
    checkpoint: int  # LSN of the last checkpoint record
    checkpoint_redo: int
    next_multi: int  # of the last checkpoint (checkPointCopy.nextMulti, nextMultiOffset)
    next_multi_offset: int
    block_size: int
    relseg_size: int
    wal_block_size: int
    wal_segment_size: int
    data_checksum_version: int


def read_control(path: Path, major: int) -> ControlFile:
    """ControlFileData of catalog/pg_control.h: the layout is the same in 13-18 up to
    data_checksum_version; 18 puts default_char_signedness before the nonce, which moves the
    CRC from 288 to 292."""
    raw = _read(path)
    crc_at = 292 if major >= 18 else 288
    if len(raw) < crc_at + 4:
        raise InputError(f"pg_control file {path} is too short ({len(raw)} bytes)", file=str(path))
    from ..parse.reader import crc32c

    stored = struct.unpack_from("<I", raw, crc_at)[0]
    if crc32c(raw[:crc_at]) != stored:
        raise InputError(f"incorrect checksum in control file {path}", file=str(path))
    sysid, ctl_version, catversion, state = struct.unpack_from("<QIIi", raw, 0)
    ctime, checkpoint, redo = struct.unpack_from("<qQQ", raw, 24)
    next_multi, next_multi_offset = struct.unpack_from("<II", raw, 40 + 36)
    (float_format,) = struct.unpack_from("<d", raw, 208)
    if float_format != FLOATFORMAT_VALUE:
        raise InputError(f"control file {path} is not of a layout this tool knows "
                         f"(floatFormat {float_format})", file=str(path))
    blcksz, relseg, xlog_blcksz, seg = struct.unpack_from("<IIII", raw, 216)
    (checksum_version,) = struct.unpack_from("<I", raw, 252)
    return ControlFile(sysid, ctl_version, catversion, state, ctime, checkpoint, redo,
                       next_multi, next_multi_offset, blcksz, relseg, xlog_blcksz, seg,
                       checksum_version)


def read_relmap(path: Path) -> dict[int, int]:
    """RelMapFile of relmapper.c: magic 0x592717, num_mappings, (oid, filenumber) pairs, a
    CRC-32C of what precedes it. 13-15 hold 62 pairs and a pad (512 bytes), 16+ 64 (524)."""
    raw = _read(path)
    if len(raw) not in (512, 524):
        raise InputError(f"relation map file {path} has {len(raw)} bytes, expected 512 or 524",
                         file=str(path))
    max_mappings = 62 if len(raw) == 512 else 64
    magic, n = struct.unpack_from("<ii", raw, 0)
    if magic != 0x592717 or not 0 <= n <= max_mappings:
        raise InputError(f"relation map file {path} contains invalid data (magic {magic:#x}, "
                         f"{n} mappings)", file=str(path))
    from ..parse.reader import crc32c

    crc_at = 8 + 8 * max_mappings
    if crc32c(raw[:crc_at]) != struct.unpack_from("<I", raw, crc_at)[0]:
        raise InputError(f"relation map file {path} contains incorrect checksum", file=str(path))
    pairs = struct.unpack_from(f"<{2 * n}I", raw, 8)
    return {pairs[i]: pairs[i + 1] for i in range(0, 2 * n, 2)}


# --- page checksums (storage/checksum_impl.h) --------------------------------------------------
_FNV_PRIME = 16777619
_N_SUMS = 32
_BASE_OFFSETS = (
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2,
    0x83E13D2C, 0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C,
    0xF718902A, 0x0B1C9CDB, 0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979,
    0xCCA6C0B2, 0x304A0979, 0x85AA43D4, 0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E,
    0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756)


def pg_checksum_page(page: bytes, blkno: int) -> int:
    """The 16-bit checksum of a page as PostgreSQL computes it: 32 parallel FNV-1a-like sums
    over the page read as rows of 32 little-endian words (pd_checksum taken as zero), two
    rounds of zeroes, the sums xor-ed together with the block number, folded into 1..65535."""
    buf = bytearray(page)
    buf[8:10] = b"\0\0"
    words = struct.unpack(f"<{len(buf) // 4}I", buf)
    sums = list(_BASE_OFFSETS)
    mask = 0xFFFFFFFF
    for i in range(0, len(words), _N_SUMS):
        row = words[i:i + _N_SUMS]
        for j in range(_N_SUMS):
            t = sums[j] ^ row[j]
            sums[j] = ((t * _FNV_PRIME) & mask) ^ (t >> 17)
    for _ in range(2):
        for j in range(_N_SUMS):
            t = sums[j]
            sums[j] = ((t * _FNV_PRIME) & mask) ^ (t >> 17)
    result = 0
    for s in sums:
        result ^= s
    result ^= blkno
    return (result % 65535) + 1


def check_heap_page(page: bytes, block_size: int) -> None:
    """PageHeaderIsValid (bufpage.c) for a heap page, and every line pointer inside the tuple
    area: a page that fails is damaged, never read as if it were a page."""
    if page[14:16] == b"\0\0":  # pd_upper 0: PageIsNew, an empty page
        return
    flags, lower, upper, special, size_version = struct.unpack_from("<HHHHH", page, 10)
    if flags & ~0x7 or not 24 <= lower <= upper <= special == block_size or \
            size_version != block_size | 4:
        raise PageFormatError(f"page header is not valid (flags {flags:#x}, lower {lower}, "
                              f"upper {upper}, special {special}, size/version "
                              f"{size_version:#x})")
    for i in range((lower - 24) // 4):
        lp = struct.unpack_from("<I", page, 24 + 4 * i)[0]
        off, lp_flags, length = lp & 0x7FFF, (lp >> 15) & 3, lp >> 17
        if lp_flags == 1 and (off < upper or off + length > special or length < 24):
            raise PageFormatError(f"line pointer {i + 1} (offset {off}, length {length}) "
                                  f"is outside the tuple area {upper}..{special}")


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError(f"file {path} is missing", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", file=str(path)) from None


def _zombie(pid: int) -> bool:
    """A process that has exited and not been reaped (a killed postmaster whose parent, often
    a container's init, never waits for it) still answers kill(pid, 0): not a live server."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    return raw[raw.rindex(b")") + 2:][:1] in (b"Z", b"X")


def _live_postmaster(path: Path) -> int | None:
    """The pid in postmaster.pid when that process is alive (a crash leaves a stale file)."""
    pid = 0
    try:
        with open(path / "postmaster.pid", "rb") as fh:
            pid = int(fh.readline().strip() or 0)
        if pid > 0:
            os.kill(pid, 0)
            return None if _zombie(pid) else pid
    except PermissionError:  # alive, another user's (or an unreadable file: pid 0)
        return None if pid and _zombie(pid) else pid or None
    except (OSError, ValueError):
        pass
    return None


class DataDir:
    """A stopped, crashed or copied data directory, read-only."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputError(f"{self.path} is not a directory")
        version_file = self.path / "PG_VERSION"
        if not version_file.is_file() or not (self.path / "global" / "pg_control").is_file():
            raise InputError(f"{self.path} is not a PostgreSQL data directory "
                             f"(no PG_VERSION or global/pg_control)", file=str(version_file))
        text = _read(version_file).decode("ascii", "replace").strip()
        try:
            self.major = int(text)
        except ValueError:
            self.major = 0
        if self.major not in SUPPORTED_MAJORS:
            raise InputError(f"{version_file} says PostgreSQL {text!r}; supported: "
                             f"{SUPPORTED_MAJORS[0]}-{SUPPORTED_MAJORS[-1]}",
                             file=str(version_file))
        self.control = read_control(self.path / "global" / "pg_control", self.major)
        self.block_size = self.control.block_size
        self.checksums = self.control.data_checksum_version != 0
        self.problems: list[str] = []  # pages skipped, statuses that could not be read
        self._slru: dict[tuple[str, int], bytes | None] = {}
        pid = _live_postmaster(self.path)
        if pid is not None:
            self.problems.append(f"a server (pid {pid}, postmaster.pid) is running on {self.path}: "
                                 f"its files may lag behind what it holds in memory")

    # -- where relation files are ---------------------------------------------------------------
    def db_dir(self, spc: int, db: int) -> Path:
        """Directory of a database's files in a tablespace (GetDatabasePath)."""
        if spc == GLOBALTABLESPACE_OID:
            return self.path / "global"
        if spc == DEFAULTTABLESPACE_OID:
            return self.path / "base" / str(db)
        return (self.path / "pg_tblspc" / str(spc) /
                f"PG_{self.major}_{self.control.catalog_version_no}" / str(db))

    def relmap(self, spc: int, db: int) -> dict[int, int]:
        return read_relmap(self.db_dir(spc, db) / "pg_filenode.map")

    # -- commit status ----------------------------------------------------------------------------
    def _slru_byte(self, where: str, page: int, byte: int, n: int = 1) -> bytes | None:
        """n bytes at `byte` of SLRU page `page` of pg_xact or a pg_multixact directory (32
        pages a segment file; 4 hex digits in its name, 15 where 17+ uses long names)."""
        seg = page // SLRU_PAGES_PER_SEGMENT
        if (where, seg) not in self._slru:
            data = None
            for name in (f"{seg:04X}", f"{seg:015X}"):
                try:
                    with open(self.path / where / name, "rb") as fh:
                        data = fh.read()
                    break
                except FileNotFoundError:
                    continue
            self._slru[(where, seg)] = data
        data = self._slru[(where, seg)]
        off = (page % SLRU_PAGES_PER_SEGMENT) * self.block_size + byte
        if data is None or off + n > len(data):
            return None
        return data[off:off + n]

    def xact_status(self, xid: int) -> int:
        """TransactionIdGetStatus from pg_xact's files; IN_PROGRESS when the page is missing."""
        per_page = self.block_size * 4
        b = self._slru_byte("pg_xact", xid // per_page, (xid % per_page) // 4)
        if b is None:
            self.problems.append(f"commit status of transaction {xid} is not in pg_xact: "
                                 f"taken as not committed")
            return TRANSACTION_STATUS_IN_PROGRESS
        return (b[0] >> ((xid % 4) * 2)) & 0x03

    def multi_updater(self, multi: int) -> int | None:
        """The xid of the member of multixact `multi` that updated or deleted the tuple
        (status NoKeyUpdate 4 or Update 5), from pg_multixact's offsets and members (multixact.c:
        4-byte offsets; members in groups of 4 flag bytes and 4 xids); None when there is none
        or the files do not have it."""
        per_page = self.block_size // 4
        offsets = "pg_multixact/offsets"
        raw = self._slru_byte(offsets, multi // per_page, (multi % per_page) * 4, 4)
        if raw is None:
            return None
        start = struct.unpack("<I", raw)[0]
        nxt = multi + 1 if multi + 1 <= 0xFFFFFFFF else 1
        end = None
        if nxt == self.control.next_multi:
            end = self.control.next_multi_offset
        else:
            raw = self._slru_byte(offsets, nxt // per_page, (nxt % per_page) * 4, 4)
            end = struct.unpack("<I", raw)[0] if raw is not None else None
        if not end or end <= start:
            end = start + 256  # the last multixact: its members end at the first xid 0
        groups_per_page = self.block_size // 20
        members_per_page = groups_per_page * 4
        for m in range(start, end):
            page, rest = divmod(m, members_per_page)
            group = (rest // 4) * 20
            flag = self._slru_byte("pg_multixact/members", page, group + m % 4)
            xid_b = self._slru_byte("pg_multixact/members", page, group + 4 + (m % 4) * 4, 4)
            if flag is None or xid_b is None:
                return None
            xid: int = struct.unpack("<I", xid_b)[0]
            if xid == 0:
                return None
            if flag[0] in (4, 5):
                return xid
        return None

    def committed(self, xid: int) -> bool:
        if xid < FIRST_NORMAL_TRANSACTION_ID:
            return xid != 0  # BootstrapTransactionId and FrozenTransactionId
        # SUB_COMMITTED is an unfinished commit (the parent's status comes from pg_subtrans,
        # which does not survive a restart): not committed, as crash recovery would decide.
        return self.xact_status(xid) == TRANSACTION_STATUS_COMMITTED

    def tuple_visible(self, tup: bytes) -> bool:
        """Whether a tuple is live in the state the files show: inserted by a committed
        transaction and not deleted by one. Hint bits are believed first (they are only ever
        set once the status is final); a lock-only xmax never deletes; a multixact xmax that
        is not lock-only deletes when its updating member committed (pg_multixact)."""
        xmin, xmax = struct.unpack_from("<II", tup, 0)
        infomask = struct.unpack_from("<H", tup, 20)[0]
        if infomask & HEAP_XMIN_FROZEN == HEAP_XMIN_FROZEN:
            pass
        elif infomask & HEAP_XMIN_INVALID:
            return False
        elif not infomask & HEAP_XMIN_COMMITTED and not self.committed(xmin):
            return False
        if infomask & HEAP_XMAX_INVALID or xmax == 0:
            return True
        if infomask & HEAP_XMAX_LOCK_ONLY or \
                infomask & (HEAP_XMAX_IS_MULTI | HEAP_LOCK_MASK) == HEAP_XMAX_EXCL_LOCK:
            return True
        if infomask & HEAP_XMAX_COMMITTED:
            return False
        if infomask & HEAP_XMAX_IS_MULTI:
            updater = self.multi_updater(xmax)
            if updater is None:
                self.problems.append(f"the updater in multixact {xmax} (a tuple's xmax) is not "
                                     f"in pg_multixact: the tuple is taken as not deleted")
                return True
            return not self.committed(updater)
        return not self.committed(xmax)

    # -- heap files -------------------------------------------------------------------------------
    def pages(self, spc: int, db: int, filenode: int, label: str) -> Iterator[tuple[Path, int,
                                                                                bytes]]:
        """(file, block number, page) of a relation's main fork, segment by segment; pages
        failing their checksum are reported in `problems` and left out."""
        base = self.db_dir(spc, db) / str(filenode)
        bs = self.block_size
        seg = 0
        while True:
            path = base if seg == 0 else base.with_name(f"{filenode}.{seg}")
            if seg > 0 and not path.exists():
                return
            raw = _read(path)
            if len(raw) % bs:
                raise InputError(f"file {path} of {label} is {len(raw)} bytes long, not a "
                                 f"multiple of the block size {bs} (truncated or damaged)",
                                 file=str(path))
            for i in range(len(raw) // bs):
                page = raw[i * bs:(i + 1) * bs]
                blkno = seg * self.control.relseg_size + i
                if self.checksums and page[14:16] != b"\0\0":  # PageIsNew pages carry none
                    want = struct.unpack_from("<H", page, 8)[0]
                    got = pg_checksum_page(page, blkno)
                    if want != got:
                        self.problems.append(
                            f"page verification failed in {path} block {blkno} ({label}): "
                            f"calculated checksum {got} but expected {want}; page skipped")
                        continue
                yield path, blkno, page
            if len(raw) < self.control.relseg_size * bs:
                return
            seg += 1

    def tuples(self, spc: int, db: int, filenode: int, label: str) -> Iterator[bytes]:
        """The visible tuples of a heap file, in physical order."""
        for path, blkno, page in self.pages(spc, db, filenode, label):
            try:
                check_heap_page(page, self.block_size)
                items = parse_page(page)
            except PageFormatError as exc:
                raise InputError(f"{label}: invalid page in block {blkno} of {path}: {exc}",
                                 file=str(path), offset=blkno * self.block_size) from None
            for offnum in sorted(items):
                tup = items[offnum]
                if not isinstance(tup, bytes):
                    continue
                if len(tup) < 24:
                    raise InputError(f"{label}: tuple ({blkno},{offnum}) of {path} is only "
                                     f"{len(tup)} bytes", file=str(path))
                if self.tuple_visible(tup):
                    yield tup
