"""Shared bench helpers: make (once) and find pgbench WAL of a given size, time commands."""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xlogtools.lsn import Lsn  # noqa: E402
from xlogtools.testing import pgbin  # noqa: E402
from xlogtools.testing.cluster import Cluster  # noqa: E402

BENCH_DIR = Path(os.environ.get("XLOGTOOLS_BENCH_DIR", "/var/tmp/xlogtools-bench"))


def pgbench_wal(major: int, mb: int, segsize_mb: int = 16, kind: str = "pgbench") -> Path:
    """A directory of >= `mb` MB of pgbench WAL (complete segments) from a real server,
    made once and kept in BENCH_DIR. kind "fpi": the start of a run after each checkpoint,
    where most records carry a full-page image (scale 50, a CHECKPOINT every 16 MB of WAL:
    each page's first change after it is logged whole)."""
    name = "pgbench" if kind == "pgbench" else f"pgbench-{kind}"
    out = BENCH_DIR / f"{name}-pg{major}-{mb}mb-seg{segsize_mb}"
    done = out / ".complete"
    if done.exists():
        return out
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o755)
    work = BENCH_DIR / f"cluster-pg{major}"
    shutil.rmtree(work, ignore_errors=True)
    c = Cluster(major, work, wal_segsize_mb=segsize_mb,
                conf={"max_wal_size": "4GB", "min_wal_size": "1GB", "checkpoint_timeout": "1h",
                      "wal_keep_size": f"{mb * 2}MB", "synchronous_commit": "off"})
    try:
        c.init().start()
        c.pgbench(["-i", "-s", "10" if kind == "pgbench" else "50", "-q"])
        start = Lsn(c.current_lsn())
        while Lsn(c.current_lsn()) - start < (mb + segsize_mb) << 20:
            if kind == "fpi":
                c.execute("CHECKPOINT;")
                mark = Lsn(c.current_lsn())
                while Lsn(c.current_lsn()) - mark < 16 << 20:
                    c.pgbench(["-c", "4", "-j", "2", "-t", "500"])
            else:
                c.pgbench(["-c", "4", "-j", "2", "-t", "5000"])
        c.execute("SELECT pg_switch_wal();")
        end = Lsn(c.current_lsn())
        c.stop()
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        seg = segsize_mb << 20
        for f in sorted(c.pg_wal.iterdir()):
            if len(f.name) == 24:
                segno = int(f.name[8:16], 16) * (0x100000000 // seg) + int(f.name[16:], 16)
                if start // seg < segno < end // seg:
                    shutil.copy(f, out / f.name)
        done.write_text("")
        return out
    finally:
        c.destroy()


def timed(argv: list[str], stdout: int | None = subprocess.DEVNULL) -> tuple[float, int]:
    """Wall seconds and peak RSS (kB) of a command."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    return time.perf_counter() - t, ru.ru_maxrss


def size_mb(d: Path) -> float:
    return sum(f.stat().st_size for f in d.iterdir() if f.is_file()) / (1 << 20)


def self_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
