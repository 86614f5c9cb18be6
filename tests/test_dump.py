"""`xlogtools dump`: every output format read back and checked against pg_waldump's own
statistics, archive layouts, --jobs, filters, and damage in the middle of the input."""
from __future__ import annotations

import bz2
import collections
import csv
import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import lz4.frame
import pyarrow.parquet as pq
import pytest
from oracle import unpack_fixture
import zstandard

from xlogtools.export import rows
from xlogtools.lsn import Lsn
from xlogtools.testing import pgbin

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WALDUMP_MAJORS = [m for m in (14, 15, 16, 17, 18) if (FIXTURES / f"pg{m}" / "waldump.txt.zst").exists()]


def xlogtools(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xlogtools.cli", *args], capture_output=True,
                          text=True, timeout=600)


def fixture_text(major: int, name: str) -> str:
    return zstandard.ZstdDecompressor().decompress(
        (FIXTURES / f"pg{major}" / name).read_bytes()).decode()


def unpack(major: int, dest: Path) -> list[Path]:
    return unpack_fixture(major, dest)


def start_of(major: int) -> str:
    return json.loads((FIXTURES / f"pg{major}" / "meta.json").read_text())["start_lsn"]


def stats_by_type(text: str) -> dict[str, int]:
    """'Heap/INSERT   123 (...' lines of pg_waldump --stats=record."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\S+/\S+(?: \S+)*?)\s+(\d+) \(", line)
        if m and "/" in m.group(1):
            out[m.group(1)] = int(m.group(2))
    return out


@pytest.mark.parametrize("major", WALDUMP_MAJORS, ids=[f"pg{m}" for m in WALDUMP_MAJORS])
@pytest.mark.parametrize("variant,args", [("waldump", []), ("waldump-b", ["-b"]),
                                           ("waldump-stats", ["--stats"]),
                                           ("waldump-stats-record", ["--stats=record"])])
def test_waldump_format_equals_committed_pg_waldump_output(major: int, variant: str,
                                                          args: list[str]) -> None:
    proc = xlogtools("dump", str(FIXTURES / f"pg{major}" / "wal"), "--format", "waldump",
                     "-s", start_of(major), *args)
    assert proc.returncode == 1 and "error in WAL record at" in proc.stderr  # the end of WAL
    expected = fixture_text(major, f"{variant}.txt.zst")
    ours = proc.stdout.splitlines()
    theirs = expected.splitlines()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"line {i + 1}:\n ours:       {a}\n pg_waldump: {b}"
    assert len(ours) == len(theirs)


def test_parquet_read_back_with_pyarrow_and_duckdb(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    major = 17
    out = tmp_path / "wal.parquet"
    proc = xlogtools("dump", str(FIXTURES / f"pg{major}" / "wal"), "-s", start_of(major),
                     "--format", "parquet", "-o", str(out))
    assert proc.returncode == 0, proc.stderr  # an export that reached the written tail
    assert "the written tail" in proc.stderr
    table = pq.read_table(out)
    assert table.schema.equals(rows.arrow_schema())
    assert list(table.schema.names) == list(rows.FIELDS)
    expected = stats_by_type(fixture_text(major, "waldump-stats-record.txt.zst"))
    got = collections.Counter(f"{r}/{t}" for r, t in zip(table.column("rmgr").to_pylist(),
                                                          table.column("record_type").to_pylist()))
    assert dict(got) == expected
    con = duckdb.connect()
    q = (f"SELECT rmgr || '/' || record_type AS k, count(*) FROM read_parquet('{out}') "
         "GROUP BY 1")
    assert dict(con.execute(q).fetchall()) == expected
    # blocks is a list of structs that SQL can unnest
    n_images = con.execute(f"SELECT count(*) FROM (SELECT unnest(blocks) AS b FROM "
                           f"read_parquet('{out}')) WHERE b.has_image").fetchone()[0]
    assert n_images == sum(b["has_image"] for bl in table.column("blocks").to_pylist() for b in bl)
    assert n_images > 100


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_jsonl_and_csv_read_back_with_the_standard_library(fmt: str, tmp_path: Path) -> None:
    major = 16
    out = tmp_path / f"wal.{fmt}"
    proc = xlogtools("dump", str(FIXTURES / f"pg{major}" / "wal"), "-s", start_of(major),
                     "--format", fmt, "-o", str(out))
    assert proc.returncode == 0, proc.stderr  # an export that reached the written tail
    if fmt == "jsonl":
        recs = [json.loads(line) for line in out.read_text().splitlines()]
    else:
        with out.open(newline="") as f:
            recs = list(csv.DictReader(f))
        for r in recs:
            r["blocks"] = json.loads(r["blocks"])
    assert list(recs[0].keys()) == list(rows.FIELDS)
    expected = stats_by_type(fixture_text(major, "waldump-stats-record.txt.zst"))
    assert dict(collections.Counter(f"{r['rmgr']}/{r['record_type']}" for r in recs)) == expected
    # the text of desc is pg_waldump's
    lines = fixture_text(major, "waldump.txt.zst").splitlines()
    r = recs[100]
    assert f"lsn: {r['lsn']}" in lines[100]
    assert f"desc: {r['record_type']} {r['desc']}" in lines[100]


def _layouts(segs: list[Path], root: Path) -> dict[str, Path]:
    """The same segments as Barman, pgBackRest and WAL-G archives, and loose compressed files."""
    out = {}
    barman = root / "barman" / "wals"
    pgbr = root / "pgbackrest" / "archive" / "main" / "15-1"
    walg = root / "walg" / "wal_005"
    loose = root / "loose"
    for i, s in enumerate(segs):
        data = s.read_bytes()
        d = barman / s.name[:16]
        d.mkdir(parents=True, exist_ok=True)
        if i % 2:
            (d / (s.name + ".gz")).write_bytes(gzip.compress(data, 1))
        else:
            (d / (s.name + ".bz2")).write_bytes(bz2.compress(data, 1))
        d = pgbr / s.name[:16]
        d.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha1(data).hexdigest()
        comp = [("gz", lambda b: gzip.compress(b, 1)), ("lz4", lz4.frame.compress),
                ("zst", zstandard.ZstdCompressor().compress)][i % 3]
        (d / f"{s.name}-{sha}.{comp[0]}").write_bytes(comp[1](data))
        walg.mkdir(parents=True, exist_ok=True)
        (walg / f"{s.name}.lz4").write_bytes(lz4.frame.compress(data))
        loose.mkdir(exist_ok=True)
        (loose / (s.name + (".partial" if i == len(segs) - 1 else "") + ".zst")).write_bytes(
            zstandard.ZstdCompressor().compress(data))
    out.update(barman=root / "barman", pgbackrest=root / "pgbackrest", walg=root / "walg",
               loose=loose)
    return out


def test_archive_layouts_give_the_same_records(tmp_path: Path) -> None:
    segs = unpack(15, tmp_path / "plain")
    plain = xlogtools("dump", str(tmp_path / "plain"), "--format", "jsonl")
    assert plain.returncode == 0 and plain.stdout.count("\n") > 10000
    for name, path in _layouts(segs, tmp_path).items():
        proc = xlogtools("dump", str(path), "--format", "jsonl")
        assert proc.stdout == plain.stdout, name
        assert proc.stderr == plain.stderr, name


@pytest.mark.parametrize("fmt", ["waldump", "jsonl", "parquet"])
def test_jobs_2_writes_what_jobs_1_writes(fmt: str, tmp_path: Path) -> None:
    out = {}
    for jobs in (1, 2):
        o = tmp_path / f"j{jobs}.{fmt}"
        proc = xlogtools("dump", str(FIXTURES / "pg18" / "wal"), "--format", fmt, "-o", str(o),
                         "--jobs", str(jobs))
        assert proc.returncode == (1 if fmt == "waldump" else 0), proc.stderr
        out[jobs] = (pq.read_table(o) if fmt == "parquet" else o.read_text(), proc.stderr)
    assert out[1][1] == out[2][1]
    if fmt == "parquet":
        assert out[1][0].equals(out[2][0]) and out[1][0].num_rows > 10000
    else:
        assert out[1][0] == out[2][0] and out[1][0].count("\n") > 10000


def test_corruption_in_the_middle_keeps_what_came_before(tmp_path: Path) -> None:
    segs = unpack(17, tmp_path / "wal")
    clean = xlogtools("dump", str(tmp_path / "wal"), "--format", "jsonl")
    good = [json.loads(x) for x in clean.stdout.splitlines()]
    # flip a byte in a record in the middle of the second segment
    data = bytearray(segs[1].read_bytes())
    victim = next(r for r in good if r["segment"] == segs[1].name and r["lsn_int"] % (1 << 20) > 400000)
    data[victim["lsn_int"] % (1 << 20) + 30] ^= 0x40
    segs[1].write_bytes(bytes(data))
    for jobs in ("1", "2"):
        out = tmp_path / f"cut{jobs}.parquet"
        proc = xlogtools("dump", str(tmp_path / "wal"), "--format", "parquet", "-o", str(out),
                         "--jobs", jobs)
        assert proc.returncode == 1
        last_good = Lsn(good[good.index(victim) - 1]["lsn"])
        assert f"error in WAL record at {last_good}:" in proc.stderr, proc.stderr
        assert "incorrect resource manager data checksum in record at" in proc.stderr, proc.stderr
        t = pq.read_table(out)  # closed and valid
        assert t.column("lsn").to_pylist() == [r["lsn"] for r in good[:good.index(victim)]]


def test_usage_errors_name_the_option() -> None:
    w = str(FIXTURES / "pg15" / "wal")
    for args, option in [(["-r", "Heapx"], "-r/--rmgr"), (["-s", "1/2/3"], "--start"),
                         (["-R", "1663/5"], "-R/--relation"), (["-F", "nope"], "-F/--fork"),
                         (["-B", "3"], "-B/--block"), (["--format", "parquet"], "-o/--output")]:
        proc = xlogtools("dump", w, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert option in proc.stderr and "Traceback" not in proc.stderr


FILTERS = [["-r", "Heap"], ["-r", "Btree", "-r", "Heap2"], ["-w"], ["-x", "740"],
           ["-R", "1663/5/1259"], ["-R", "1663/5/1259", "-B", "0"], ["-F", "vm"],
           ["-n", "17"], ["-e", "START+65536"]]


@pytest.mark.parametrize("major", [m for m in (16, 17, 18) if m in WALDUMP_MAJORS])
def test_filters_equal_pg_waldump_filters(major: int, tmp_path: Path) -> None:
    try:
        waldump = pgbin.tool(major, "pg_waldump")
    except pgbin.Unavailable as exc:
        pytest.skip(exc.reason)
    segs = unpack(major, tmp_path / "wal")
    start = start_of(major)
    for f in FILTERS:
        f = [str(Lsn(start) + 65536) if a == "START+65536" else a for a in f]
        theirs = subprocess.run([str(waldump), "-p", str(tmp_path / "wal"), "-s", start, *f],
                                capture_output=True, text=True, timeout=120)
        ours = xlogtools("dump", str(tmp_path / "wal"), "--format", "waldump", "-s", start, *f)
        assert ours.stdout == theirs.stdout, f
        assert theirs.stdout.count("\n") > 0 or f[0] == "-x", f
    assert segs


def test_follow_prints_records_as_the_server_writes_them(cluster_factory) -> None:
    """dump -f waits at the end of WAL and prints new records as they arrive (pg_waldump -f)."""
    import time

    c = cluster_factory(15)
    start = c.current_lsn()
    proc = subprocess.Popen([sys.executable, "-m", "xlogtools.cli", "dump", str(c.pg_wal),
                             "-s", start, "-f", "--format", "waldump"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        c.execute("CREATE TABLE followed (a int); INSERT INTO followed VALUES (42);")
        c.execute("SELECT pg_logical_emit_message(false, 'follow', 'marker-after-insert');")
        deadline = time.monotonic() + 30
        seen = ""
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        while time.monotonic() < deadline and 'prefix "follow"' not in seen:
            if sel.select(timeout=1):
                seen += proc.stdout.readline()  # type: ignore[union-attr]
        assert 'prefix "follow"' in seen
        assert "rmgr: Heap" in seen and "INSERT" in seen
        assert proc.poll() is None  # still following
    finally:
        proc.kill()
        proc.wait()


def test_pg13_descriptions_carry_what_the_workload_put_in() -> None:
    """No pg_waldump 13 here: the descriptions of the committed 13 fixture are checked against
    the values the every-rmgr workload (xlogtools/testing/workload.py) wrote."""
    if not (FIXTURES / "pg13" / "meta.json").exists():
        pytest.skip("no pg13 fixture")
    from xlogtools.parse.api import open_wal
    from xlogtools.parse.rmgr import describe, identify

    lines = [(r.rmgr_name, identify(r), describe(r), r) for r in open_wal(FIXTURES / "pg13" / "wal")]
    # 13 prints the kind and size of a logical message (14+ add prefix and payload)
    messages = [d for n, _, d, _ in lines if n == "LogicalMessage"]
    assert f"transactional message size {len('transactional message')} bytes" in messages
    assert f"nontransactional message size {len('non-transactional message')} bytes" in messages
    prepared = {d.split("gid ")[1].split(":")[0] for n, t, d, _ in lines if t == "PREPARE"}
    assert prepared == {"gx1", "gx2"}
    committed = [r for n, t, d, r in lines if t == "COMMIT_PREPARED"]
    aborted = [r for n, t, d, r in lines if t == "ABORT_PREPARED"]
    assert len(committed) == 1 and len(aborted) == 1
    assert any(t == "RESTORE_POINT" and "xlogtools" in d for n, t, d, _ in lines)
    # nextval() 40 times: the sequence logs ahead in steps of 32, so two LOG records at least
    assert sum(1 for n, t, d, _ in lines if n == "Sequence" and t == "LOG") >= 2
    # CREATE TABLESPACE ... LOCATION '<dir>/ts1' names that directory
    assert any(n == "Tablespace" and t == "CREATE" and d.endswith('/ts1"') for n, t, d, _ in lines)
    # the 70 subtransactions of one DO block: an ASSIGNMENT listing 64 of them
    assert any(t == "ASSIGNMENT" and len(d.split("subxacts:")[1].split()) >= 64
               for n, t, d, _ in lines if "subxacts:" in d)
    # the multixact of a share lock plus an update in a subtransaction
    assert any(n == "MultiXact" and t == "CREATE_ID" and "(sh)" in d and "(nokeyupd)" in d
               for n, t, d, _ in lines)


@pytest.mark.pg_majors(14, 15, 16, 17, 18)
def test_pgbench_wal_in_waldump_format_equals_pg_waldump(pg_major: int, cluster_factory) -> None:
    c = cluster_factory(wal_compression="pglz", conf={"checkpoint_timeout": "30s"})
    c.pgbench(["-i", "-s", "1", "-q"])
    c.execute("CHECKPOINT;")
    c.pgbench(["-c", "2", "-t", "300"])
    c.stop()
    waldump = pgbin.tool(pg_major, "pg_waldump")
    segs = sorted(p.name for p in c.pg_wal.iterdir() if len(p.name) == 24)
    for args in ([], ["-b"], ["--stats"], ["--stats=record"]):
        theirs = subprocess.run([str(waldump), *args, "-p", str(c.pg_wal), segs[0], segs[-1]],
                                capture_output=True, text=True, timeout=300)
        ours = xlogtools("dump", str(c.pg_wal), "--format", "waldump", *args)
        assert ours.stdout == theirs.stdout, args
        assert theirs.stdout.count("\n") > (20 if "--stats" in " ".join(args) else 5000)


WALDUMP_LINE = re.compile(r"^rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+), "
                          r"lsn: (\S+), prev \S+, desc: (\S+(?: \(\w+\))?) ?(.*)$")


@pytest.mark.parametrize("major", WALDUMP_MAJORS, ids=[f"pg{m}" for m in WALDUMP_MAJORS])
def test_default_text_has_pg_waldumps_fields_in_its_order(major: int) -> None:
    """Each line of the default text carries what pg_waldump's line for the same record says
    (committed pg_waldump output): LSN, rmgr/record type, xid, lengths, description, block
    references, in that order; the export reaches the written tail, exit 0."""
    proc = xlogtools("dump", str(FIXTURES / f"pg{major}" / "wal"), "-s", start_of(major))
    assert proc.returncode == 0, proc.stderr
    ours = proc.stdout.splitlines()
    theirs = fixture_text(major, "waldump.txt.zst").splitlines()
    assert len(ours) == len(theirs) > 1000
    for i, (a, b) in enumerate(zip(ours, theirs)):
        m = WALDUMP_LINE.match(b)
        assert m, b
        rmgr, rec, tot, tx, lsn, rtype, rest = m.groups()
        desc, _, refs = rest.partition(", blkref #")
        desc = desc.strip()
        fpi = int(tot) - int(rec)
        want = (f"{lsn}  {rmgr}/{rtype}  tx {tx}  len {rec}/{tot}" + (f" fpi {fpi}" if fpi else "")
                + (f"  {desc}" if desc else "") + (f"  blkref #{refs}" if refs else ""))
        assert a == want, f"line {i + 1}:\n ours: {a}\n want: {want}\n pg_waldump: {b}"
