"""Reading PostgreSQL's own answers: pg_waldump -b output, recovery log lines, pg_controldata."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xlogtools.lsn import Lsn
from xlogtools.parse.record import Record

REC_RE = re.compile(r"^rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+), "
                    r"lsn: ([0-9A-F]+/[0-9A-F]+), prev ([0-9A-F]+/[0-9A-F]+), desc: ")
BLK_RE = re.compile(r"^\tblkref #(\d+): rel (\d+)/(\d+)/(\d+) fork (\w+) blk (\d+)"
                    r"(?: \((FPW[^)]*)\))?(?:; hole: offset: (\d+), length: (\d+)"
                    r"(?:, compression saved: (\d+))?(?:, method: (\w+))?)?$")


@dataclass(frozen=True)
class Row:
    rmgr: str
    rec_len: int
    tot_len: int
    xid: int
    lsn: str
    prev: str
    blocks: tuple[tuple[object, ...], ...]


def parse_waldump_b(text: str) -> list[Row]:
    """Records of `pg_waldump -b` output with their block references."""
    rows: list[Row] = []
    cur: list[object] | None = None
    blocks: list[tuple[object, ...]] = []
    for line in text.splitlines():
        m = REC_RE.match(line)
        if m:
            if cur is not None:
                rows.append(Row(*cur, tuple(blocks)))  # type: ignore[arg-type]
            g = m.groups()
            cur = [g[0], int(g[1]), int(g[2]), int(g[3]), g[4], g[5]]
            blocks = []
            continue
        b = BLK_RE.match(line)
        if b and cur is not None:
            bid, spc, db, rel, fork, blk, fpw, hoff, hlen, saved, method = b.groups()
            blocks.append((int(bid), int(spc), int(db), int(rel), fork, int(blk), fpw,
                           int(hoff) if hoff else None, int(hlen) if hlen else None,
                           int(saved) if saved else None, method))
    if cur is not None:
        rows.append(Row(*cur, tuple(blocks)))  # type: ignore[arg-type]
    return rows


def our_row(rec: Record, major: int) -> Row:
    """The same fields from our reader, as pg_waldump -b of `major` would print them."""
    blocks = []
    for b in rec.blocks:
        fpw = hoff = hlen = saved = method = None
        if b.has_image:
            fpw = "FPW" if b.apply_image else "FPW for WAL verification"
            hoff, hlen = b.hole_offset, b.hole_length
            if b.compression:
                saved = rec.block_size - b.image_len - b.hole_length
                method = b.compression if major >= 15 else None
        blocks.append((b.block_id, b.spc, b.db, b.rel, b.fork_name, b.blk, fpw, hoff, hlen,
                       saved, method))
    return Row(rec.rmgr_name, rec.rec_len, rec.tot_len, rec.xid, rec.lsn.waldump(),
               rec.prev.waldump(), tuple(blocks))


def run_waldump(waldump: Path, pg_wal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pg_waldump over a directory. With -s in args it reads from there to the end of WAL;
    without, it reads from the first to the last segment file present."""
    files: list[str] = []
    if "-s" not in args and not any(a.startswith("--start") for a in args):
        segs = sorted(p.name for p in pg_wal.iterdir() if len(p.name) == 24)
        files = [segs[0], segs[-1]]
    return subprocess.run([str(waldump), *args, "-p", str(pg_wal), *files,
                           *waldump_start_file(pg_wal, args)],
                          capture_output=True, text=True, timeout=600)


def waldump_start_file(pg_wal: Path, args: tuple[str, ...]) -> list[str]:
    """[STARTSEG, ENDSEG] for pg_waldump when pg_wal holds a segment file with no WAL yet.

    Given -s and -p only, pg_waldump takes the segment size from whichever WAL file readdir
    returns first, and fails ("header specifies 0 bytes") when that is a new segment the
    server had created, zero-filled, without writing to it yet (a crash copy can have one).
    Naming the file holding -s's LSN and the last file makes it read the size there; that
    file is then the last one it reads, which is where it would stop anyway (the empty file
    is at or past the end of WAL). Otherwise (and with -t, or a segment already named) []."""
    if "-s" not in args or "-t" in args or any(len(a) == 24 and a.isalnum() for a in args):
        return []
    files = sorted(p for p in pg_wal.iterdir() if len(p.name) == 24)
    heads = {p.name: p.read_bytes()[:40] for p in files}
    good = [n for n, h in heads.items() if len(h) == 40 and h[2] & 0x02]  # XLP_LONG_HEADER
    if not good or len(good) == len(files):
        return []
    seg_size = int.from_bytes(heads[good[0]][32:36], "little")
    start, per_id = int(Lsn(args[args.index("-s") + 1])) // seg_size, 0x100000000 // seg_size
    name = f"{good[0][:8]}{start // per_id:08X}{start % per_id:08X}"
    return [name, files[-1].name] if name in heads else []


def first_diff(ours: list[Row], theirs: list[Row]) -> str:
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return f"record {i}: ours {a} != pg_waldump {b}"
    return f"lengths differ: ours {len(ours)}, pg_waldump {len(theirs)}"


REDO_DONE_RE = re.compile(r"redo done at ([0-9A-F]+/[0-9A-F]+)")


def redo_done_at(log: str) -> Lsn | None:
    m = REDO_DONE_RE.findall(log)
    return Lsn(m[-1]) if m else None


def controldata(pg_controldata: Path, datadir: Path) -> dict[str, str]:
    """pg_controldata's fields (it only reads a file, so it may run as root)."""
    out = subprocess.run([str(pg_controldata), "-D", str(datadir)], capture_output=True,
                         text=True, timeout=60, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}).stdout
    return {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in out.splitlines() if ":" in ln)}


def controldata_tool(major: int) -> Path:
    """pg_controldata of the major, else Debian 15's (13's server-only build has none; the
    control file layout of 13 and 15 is the same, PG_CONTROL_VERSION 1300)."""
    from xlogtools.testing import pgbin

    own = pgbin.bindir(major) / "pg_controldata"
    return own if own.exists() else pgbin.bindir(15) / "pg_controldata"


FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def unpack_fixture(major: int, dest: Path) -> list[Path]:
    """The committed fixture segments of `major`, decompressed into `dest` (made if needed)."""
    import zstandard

    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted((FIXTURES / f"pg{major}" / "wal").glob("*.zst")):
        p = dest / f.name[:-4]
        p.write_bytes(zstandard.ZstdDecompressor().decompress(f.read_bytes(), max_output_size=1 << 24))
        out.append(p)
    return out


def replayed(standby, lsn: str) -> bool:  # type: ignore[no-untyped-def]
    """The standby has replayed up to lsn."""
    return standby.sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == [("t",)]


def caught_up(primary, standby, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Wait until the standby has replayed what the primary has written so far."""
    from xlogtools.testing.cluster import wait_until

    lsn = primary.current_lsn()
    wait_until(lambda: replayed(standby, lsn), timeout, what="the standby to catch up")
