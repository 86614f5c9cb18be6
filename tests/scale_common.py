"""Shared by the scale-out tests (test_scale*.py): the single-process oracle (`dump --format
jsonl`, `--stats=record`), engine rows in the same form, and a live WAL with a timeline
switch and records across 1 MB segment boundaries."""
from __future__ import annotations

import collections
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from oracle import caught_up

from xlogtools.export import rows

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAJORS = [m for m in (13, 14, 15, 16, 17, 18) if (FIXTURES / f"pg{m}" / "wal").is_dir()]
LIVE_MAJOR = 17


def xlogtools(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xlogtools.cli", *args], capture_output=True,
                          text=True, timeout=900)


def dump_rows(wal: Path | str, *args: str) -> list[dict[str, Any]]:
    proc = xlogtools("dump", str(wal), "--format", "jsonl", *args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(x) for x in proc.stdout.splitlines()]


def stats_by_type(wal: Path | str) -> dict[str, int]:
    """'Heap/INSERT   123 (...' lines of dump --stats=record (pg_waldump's counts)."""
    proc = xlogtools("dump", str(wal), "--stats=record")
    out = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^(\S+/\S+(?: \S+)*?)\s+(\d+) \(", line)
        if m and "/" in m.group(1):
            out[m.group(1)] = int(m.group(2))
    return out


def _text(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return rows.format_time(t.astimezone(dt.timezone.utc))


def as_jsonl(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Engine rows (from an Arrow table's to_pylist) in dump --format jsonl's form, sorted by
    timeline and LSN."""
    out = []
    for r in records:
        r = dict(r)
        for k in ("xact_time", "commit_time"):
            if k in r:
                r[k] = _text(r[k])
        out.append(r)
    out.sort(key=lambda r: (r.get("timeline", 0), r.get("lsn_int", 0), r.get("lsn", "")))
    return out


def type_counts(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    return dict(collections.Counter(f"{r['rmgr']}/{r['record_type']}" for r in records))


def assert_same_rows(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    for a, b in zip(ours, theirs):
        if a != b:
            diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
            raise AssertionError(f"record {b.get('lsn')}: {diff}")


def filter_cases(rows_: list[dict[str, Any]]) -> list[tuple[dict[str, Any], list[str]]]:
    """(engine keyword filters, the same as dump options), chosen from the WAL itself."""
    heap_rec = next(r for r in rows_ if r["rmgr"] == "Heap" and r["blocks"] and r["xid"])
    b = heap_rec["blocks"][0]
    rel = f"{b['spc']}/{b['db']}/{b['rel']}"
    mid = rows_[len(rows_) // 3]["lsn"]
    late = rows_[2 * len(rows_) // 3]["end_lsn"]
    return [
        ({"rmgr": ["Heap", "Btree"]}, ["-r", "Heap", "-r", "Btree"]),
        ({"xid": heap_rec["xid"]}, ["-x", str(heap_rec["xid"])]),
        ({"relation": rel}, ["-R", rel]),
        ({"relation": rel, "block": b["blk"]}, ["-R", rel, "-B", str(b["blk"])]),
        ({"fork": "vm"}, ["-F", "vm"]),
        ({"fullpage": True}, ["-w"]),
        ({"start": mid, "end": late}, ["-s", mid, "-e", late]),
    ]


def make_live_wal(factory: Any, dest: Path) -> Path:
    """A promoted standby's pg_wal (1 MB segments): timeline 1, the switch, timeline 2; heap
    records of 7 kB (many across segment boundaries) and logical messages of 2.5 MB (records
    spanning whole segments, whose segments no record starts in)."""
    primary = factory(LIVE_MAJOR, name="scale-primary", wal_segsize_mb=1)
    standby = factory.standby(primary, name="scale-standby")
    primary.execute("CREATE TABLE big (id int, payload text);"
                    "ALTER TABLE big ALTER COLUMN payload SET STORAGE PLAIN;")
    primary.execute("INSERT INTO big SELECT g, (SELECT string_agg(md5((g * 1000 + i)::text), '') "
                    "FROM generate_series(1, 200) i) FROM generate_series(1, 300) g;")
    primary.execute("SELECT pg_logical_emit_message(true, 'scale', repeat('y', 2500000));")
    primary.execute("BEGIN; INSERT INTO big SELECT g, repeat('z', 100) FROM "
                    "generate_series(1, 2000) g; SAVEPOINT s; DELETE FROM big WHERE id < 50; "
                    "ROLLBACK TO s; UPDATE big SET id = id + 1 WHERE id < 10; COMMIT;")
    caught_up(primary, standby)
    standby.promote()
    standby.execute("INSERT INTO big SELECT g, (SELECT string_agg(md5((g * 7 + i)::text), '') "
                    "FROM generate_series(1, 200) i) FROM generate_series(1, 300) g;")
    standby.execute("SELECT pg_logical_emit_message(false, 'scale', repeat('w', 2500000));")
    standby.execute("DELETE FROM big WHERE id % 3 = 0; VACUUM big;")
    standby.stop()
    primary.stop()
    shutil.copytree(standby.pg_wal, dest)
    return dest
