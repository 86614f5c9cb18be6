"""Exit status of `dump` exports at the end of WAL (issue 17, DESIGN.md 3): 0 where a pg_wal
simply ends (a clean stop, a SIGKILL crash), 1 where valid WAL lies beyond the stop (a CRC
damage or a missing segment in the middle); `--format waldump` keeps pg_waldump's 1."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oracle import controldata, controldata_tool, redo_done_at
from xlogtools.lsn import Lsn

EXPORTS = ("text", "table", "jsonl", "csv", "parquet")
SEG = re.compile(r"[0-9A-F]{24}")


def dump(wal: Path, fmt: str, out: Path) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "xlogtools.cli", "dump", str(wal), "--format", fmt]
    if fmt == "parquet":
        args += ["-o", str(out / "wal.parquet")]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def copy_wal(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in src.iterdir():
        if SEG.fullmatch(f.name) or f.name.endswith(".history"):
            shutil.copy(f, dest / f.name)
    return dest


def workload(c, first: int, n: int) -> None:  # type: ignore[no-untyped-def]
    c.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v text);")
    for i in range(first, first + n):
        c.execute(f"INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series({i * 2000}, "
                  f"{i * 2000 + 1999}) g;")


def records(wal: Path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "xlogtools.cli", "dump", str(wal), "--format",
                           "jsonl"], capture_output=True, text=True, timeout=600)
    return [json.loads(x) for x in proc.stdout.splitlines()]


@pytest.fixture(scope="module")
def wal_copies(pg_major: int, module_cluster_factory, tmp_path_factory) -> dict[str, Path]:
    """pg_wal of one cluster after a clean stop, after a SIGKILL crash, and that crash copy
    with a flipped byte in a record in the middle, and with a middle segment removed."""
    root = tmp_path_factory.mktemp(f"exit{pg_major}")
    c = module_cluster_factory(pg_major, name=f"exit{pg_major}")
    workload(c, 0, 3)
    c.stop()
    clean = copy_wal(c.pg_wal, root / "clean")
    ctl = controldata(controldata_tool(pg_major), c.datadir)
    c.start()
    c.execute("CHECKPOINT;")
    workload(c, 3, 4)
    c.crash()
    crash = copy_wal(c.pg_wal, root / "crash")
    c.start()  # crash recovery says where it found the end: redo done at the last record
    redo_done = redo_done_at(c.log_text())
    c.stop()
    recs = records(crash)
    used = sorted({r["segment"] for r in recs})
    assert len(used) >= 4, used
    middle = used[len(used) // 2]
    damage = copy_wal(crash, root / "damage")
    victim = next(r for r in recs if r["segment"] == middle and r["lsn_int"] % (1 << 20) > 300000)
    data = bytearray((damage / middle).read_bytes())
    data[victim["lsn_int"] % (1 << 20) + 30] ^= 0x40
    (damage / middle).write_bytes(bytes(data))
    missing = copy_wal(crash, root / "missing")
    (missing / middle).unlink()
    return {"clean": clean, "crash": crash, "damage": damage, "missing": missing,
            "checkpoint": ctl["Latest checkpoint location"], "redo_done": str(redo_done),
            "victim": victim["lsn"], "middle": middle}  # type: ignore[dict-item]


@pytest.mark.parametrize("fmt", EXPORTS)
def test_a_clean_stop_and_a_crash_exit_0(pg_major: int, wal_copies, fmt: str,
                                          tmp_path: Path) -> None:
    """The WAL of a stopped server ends after its shutdown checkpoint (pg_controldata's
    latest checkpoint), a crashed one's at the last record crash recovery replayed ("redo
    done at"): both are the written tail, exit 0, and stderr says where the WAL ends."""
    for case, last in (("clean", wal_copies["checkpoint"]), ("crash", wal_copies["redo_done"])):
        proc = dump(wal_copies[case], fmt, tmp_path)
        assert proc.returncode == 0, (case, proc.stderr)
        assert "the written tail of timeline 1" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        end = re.search(r"end of WAL at (\S+),", proc.stderr)
        assert end, proc.stderr
        recs = records(wal_copies[case])
        assert recs[-1]["lsn"] == Lsn(last).waldump()
        assert Lsn(end.group(1)) == Lsn(recs[-1]["end_lsn"])


@pytest.mark.parametrize("fmt", EXPORTS)
def test_damage_or_a_missing_segment_in_the_middle_exits_1(pg_major: int, wal_copies, fmt: str,
                                                            tmp_path: Path) -> None:
    proc = dump(wal_copies["damage"], fmt, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "end of WAL in the middle" in proc.stderr and "continues after it" in proc.stderr
    assert "incorrect resource manager data checksum" in proc.stderr, proc.stderr
    proc = dump(wal_copies["missing"], fmt, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert f"segment {wal_copies['middle']} is missing" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    if fmt == "parquet":  # what came before the damage is written, in a valid file
        import pyarrow.parquet as pq

        t = pq.read_table(tmp_path / "wal.parquet")
        assert t.num_rows > 0 and max(t.column("lsn_int").to_pylist()) < int(Lsn(wal_copies["victim"]))


def test_waldump_format_keeps_pg_waldumps_status(pg_major: int, wal_copies, tmp_path: Path) -> None:
    for case in ("clean", "crash", "damage", "missing"):
        proc = dump(wal_copies[case], "waldump", tmp_path)
        assert proc.returncode == 1, (case, proc.stderr)
        assert "xlogtools: end of WAL: error in WAL record at" in proc.stderr
