"""Records of real WAL changed *with their CRC made right*, so the reader accepts them and every
decoder above it sees the damage: rmgr identify/describe (pg_waldump text and -b), fragment
and block decoding, full-page image restore, heap replay, tuple deforming, TOAST, type output,
transaction parsing.  Each case must end in a result or an XlogError; a case that takes longer
than its budget is a hang.  Seeded: a failure names its seed, case and mutation, and
`python tests/test_fuzz_crc.py MAJOR CASE` (from the repository) repeats just that case.

The fixtures of every major (fixtures/pgNN, the every-rmgr workload) give the records; their
heap relations are read with a made-up column list of many types, so tuples that do not fit
reach deforming and every type output function with odd bytes.  tests/test_replay_edge_values.py
fuzzes the WAL of a real cluster with its real catalog in the same way.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzzwal import KINDS, Hang, Wal, budget, mutate  # noqa: E402
from oracle import unpack_fixture  # noqa: E402
from test_reader_fuzz import mutate as raw_mutate  # noqa: E402

from xlogtools.errors import XlogError  # noqa: E402
from xlogtools.export.waldump import format_record  # noqa: E402
from xlogtools.parse import reader as reader_mod  # noqa: E402
from xlogtools.parse import rmgr  # noqa: E402
from xlogtools.parse.record import Record  # noqa: E402
from xlogtools.replay import types as T  # noqa: E402
from xlogtools.replay.api import Replay  # noqa: E402
from xlogtools.replay.catalog import Catalog, Column, Relation  # noqa: E402
from xlogtools.replay.pages import parse_page  # noqa: E402
from xlogtools.replay.tuples import Renderer, TupleError, Undecodable, Unresolved, deform  # noqa: E402
from xlogtools.replay.xact import XactTracker  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAJORS = [m for m in (13, 14, 15, 16, 17, 18) if (FIXTURES / f"pg{m}" / "meta.json").exists()]
CASES = int(os.environ.get("XLOGTOOLS_FUZZ_CASES", "1200"))  # per major
BUDGET = 2.0  # seconds per case; a case normally takes a few milliseconds
RM_HEAP2, RM_HEAP = 9, 10

# A made-up table layout: many types, fixed and variable length, arrays, so the fixtures'
# tuples (of other tables) reach deforming and the output functions with odd bytes.
_COLS = [(T.INT4, "int4", 4, "i", None), (T.TEXT, "text", -1, "i", None),
         (T.FLOAT4, "float4", 4, "i", None), (T.NUMERIC, "numeric", -1, "i", None),
         (T.FLOAT8, "float8", 8, "d", None), (T.JSONB, "jsonb", -1, "i", None),
         (T.TIMESTAMPTZ, "timestamptz", 8, "d", None), (1007, "_int4", -1, "i", T.INT4),
         (T.DATE, "date", 4, "i", None), (T.INTERVAL, "interval", 16, "d", None),
         (1009, "_text", -1, "i", T.TEXT), (T.BYTEA, "bytea", -1, "i", None),
         (T.TIMESTAMP, "timestamp", 8, "d", None), (T.INET, "inet", -1, "i", None),
         (1231, "_numeric", -1, "i", T.NUMERIC), (T.BIT, "bit", -1, "i", None),
         (T.TIMETZ, "timetz", 12, "d", None), (T.MONEY, "money", 8, "d", None),
         (1185, "_timestamptz", -1, "i", T.TIMESTAMPTZ), (T.UUID, "uuid", 16, "c", None),
         (T.NAME, "name", 64, "c", None), (T.VARCHAR, "varchar", -1, "i", None)]


def probe_columns() -> list[Column]:
    return [Column(i + 1, f"c{i + 1}_{name}", False, False, oid, name, -1, attlen,
                   attlen in (1, 2, 4, 8), align, "x" if attlen == -1 else "p", elem)
            for i, (oid, name, attlen, align, elem) in enumerate(_COLS)]


def probe_catalog(wal: Wal) -> Catalog:
    """Every user relation the fixture's heap records name, with the made-up layout."""
    rels = sorted({(b.spc, b.db, b.rel) for r in wal.records if r.rmid in (RM_HEAP, RM_HEAP2)
                   for b in r.blocks[:1] if b.db and b.rel >= 16384})
    cols = probe_columns()
    relations = [Relation(rel, rel, spc, db, "public", f"t{rel}", "r", "d", None, ["c1_int4"],
                          cols) for spc, db, rel in rels]
    db = rels[0][1] if rels else 5
    return Catalog(str(wal.cluster.sysid), wal.cluster.pg_major * 10000, wal.cluster.block_size,
                   wal.cluster.seg_size, "UTF8", "fuzz", db, 1663, relations, {})


@dataclass
class Outcome:
    kinds: Counter[str] = field(default_factory=Counter)  # how cases ended
    failures: list[str] = field(default_factory=list)
    decoded: int = 0  # mutated records that reached the decoders
    skipped: int = 0  # records replay reported (RecordDataError) and skipped
    marked: int = 0  # descriptions with the past-end marker


def decode_record(rec: Record, renderer: Renderer, cols: list[Column]) -> bool:
    """Every decoder that takes a record by itself; only results or XlogErrors may come out
    (Undecodable/Unresolved are the renderer's typed verdicts on a value). True when the
    description carries the past-end marker."""
    rmgr.record_type(rec)
    marked = "past the end of the record>" in rmgr.describe(rec)
    format_record(rec, False)
    format_record(rec, True)
    if rec.rmid == 1:
        try:
            XactTracker().feed(rec)
        except XlogError:
            pass
    for b in rec.blocks:
        rec.block_data(b)
        if not b.has_image:
            continue
        try:
            page = rec.restore_page(b)
        except XlogError:
            continue
        if rec.rmid not in (RM_HEAP, RM_HEAP2):
            continue
        try:
            items = parse_page(page)
        except ValueError:
            continue
        for item in list(items.values())[:8]:
            if isinstance(item, bytes):
                render_tuple(item, renderer, cols, rec.pg_major)
    return marked


def render_tuple(tup: bytes, renderer: Renderer, cols: list[Column], major: int) -> None:
    try:
        datums = deform(tup, cols, major)
    except TupleError:
        return
    for col, v in zip(cols, datums):
        if isinstance(v, bytes) or v is None:
            try:
                renderer.render(v, col.type_oid, col.type_name, col.element_type_oid)
            except (Undecodable, Unresolved, TupleError):
                pass


def run_case(wal: Wal, catalog: Catalog, cols: list[Column], seed: int, case: int,
             out: Outcome) -> None:
    rng = random.Random(seed * 1_000_003 + case)
    recs = wal.records
    # every kind of record (rmgr and info) equally often, not by how common it is
    group = wal.groups[rng.randrange(len(wal.groups))]
    i = group[rng.randrange(len(group))]
    rec = recs[i]
    kind = rng.choice(KINDS)
    data = mutate(rng, rec, kind)
    if data is None:
        out.kinds["not applicable"] += 1
        return
    segs = wal.patched(rec, data)
    where = f"case {case} (seed {seed}): {kind} of {rec.rmgr_name} record at {rec.lsn}"
    stop = recs[min(i + 3, len(recs) - 1)].end
    try:
        with budget(BUDGET):
            # the reader, both walks: scan() with and without the C walk, then iteration
            counts = []
            for c_walk in (True, False):
                saved = reader_mod._cscan
                if not c_walk:
                    reader_mod._cscan = None
                try:
                    r = wal.reader(segs, int(rec.lsn))
                    r.end = stop
                    counts.append((r.scan(), r.last_record_lsn,
                                   r.end_of_wal.as_dict() if r.end_of_wal else None))
                finally:
                    reader_mod._cscan = saved
            assert counts[0] == counts[1], f"{where}: C walk {counts[0]} != Python {counts[1]}"
            reader = wal.reader(segs, int(rec.lsn))
            reader.end = stop
            renderer = Renderer(catalog, None, T.OutputContext("UTC", "UTF8", rec.pg_major))
            got = list(reader)
            if got and got[0].lsn == rec.lsn:
                out.decoded += 1
            for r in got:
                out.marked += decode_record(r, renderer, cols)
            # replay from a few records before, so some pages are known
            start = recs[max(i - 20, 0)].lsn
            rp = Replay(wal.source(segs), catalog, start=start, end=stop, include="all")
            for ch in rp:
                ch.to_dict()
            internal = [n for n in rp.warnings if "internal error" in n]
            assert not internal, f"{where}: {internal}"
            assert all(str(e.lsn) in str(e) for e in rp.errors), rp.errors
            out.skipped += len(rp.errors)
        out.kinds["result"] += 1
    except XlogError as exc:
        out.kinds[type(exc).__name__] += 1
    except Hang as exc:
        tb = traceback.extract_tb(exc.__traceback__)[-2]
        out.failures.append(f"{where}: hang, {exc} ({Path(tb.filename).name}:{tb.lineno} "
                            f"{tb.name})")
    except Exception as exc:  # noqa: BLE001 - the point of the test
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        out.failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:200]} "
                            f"({Path(tb.filename).name}:{tb.lineno} {tb.name})")


_WALS: dict[int, Wal] = {}


def fixture_wal(major: int, tmp: Path) -> Wal:
    if major not in _WALS:
        _WALS[major] = Wal.load(unpack_fixture(major, tmp / f"pg{major}"))
    return _WALS[major]


@pytest.mark.serial  # a decode that takes over 2 s counts as a hang: run it on a quiet machine
@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_crc_valid_mutations_end_in_a_result_or_a_typed_error(major: int,
                                                              tmp_path: Path) -> None:
    wal = fixture_wal(major, tmp_path)
    catalog = probe_catalog(wal)
    cols = probe_columns()
    out = Outcome()
    for case in range(CASES):
        run_case(wal, catalog, cols, major, case, out)
    assert not out.failures, f"{len(out.failures)} of {CASES} cases failed:\n" + "\n".join(
        out.failures[:40])
    # the mutations did reach the decoders, and in many different shapes
    assert out.decoded > CASES // 3, (out.decoded, out.kinds)
    assert out.kinds["result"] > CASES // 3, out.kinds
    # the checks of counts against the data were reached: replay skipped damaged records,
    # descriptions said what lay past the end
    assert out.skipped and out.marked, (out.skipped, out.marked)


RAW_ROUNDS = 8


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_raw_damage_then_every_decoder(major: int, tmp_path: Path) -> None:
    """The raw damage of test_reader_fuzz (bit flips, zeroed ranges, truncation, garbage,
    shuffled pages; CRCs left as they are): what the reader still yields goes through every
    decoder and the replay; only results and XlogErrors come out, and no internal error."""
    clean = tmp_path / "clean"
    unpack_fixture(major, clean)
    wal = fixture_wal(major, tmp_path)
    catalog = probe_catalog(wal)
    cols = probe_columns()
    rng = random.Random(1000 + major)
    failures = []
    for i in range(RAW_ROUNDS):
        work = tmp_path / f"raw{i}"
        shutil.copytree(clean, work)
        raw_mutate(rng, sorted(work.iterdir()))
        try:
            with budget(30.0):
                try:
                    damaged = Wal.load([work])
                except XlogError:
                    continue  # e.g. the first page is no longer WAL: a typed error
                renderer = Renderer(catalog, None, T.OutputContext("UTC", "UTF8", major))
                for r in damaged.records:
                    decode_record(r, renderer, cols)
                rp = Replay([work], catalog, include="all")
                for ch in rp:
                    ch.to_dict()
                assert not [w for w in rp.warnings if "internal error" in w], rp.warnings
        except XlogError:
            pass
        except (Hang, Exception) as exc:  # noqa: BLE001 - the point of the test
            failures.append(failure(f"round {i}", exc))
        finally:
            shutil.rmtree(work)
    assert not failures, "\n".join(failures)


def test_cli_shows_crc_valid_damage_without_a_traceback(tmp_path: Path) -> None:
    """dump (text, waldump -b) and replay over WAL whose damaged records have right CRCs: exit
    status 0 or 1 and never a traceback; replay names the skipped record's LSN."""
    major = 15 if 15 in MAJORS else MAJORS[-1]
    wal = fixture_wal(major, tmp_path)
    cat_file = tmp_path / "probe.json"
    cat_file.write_text(json.dumps(probe_catalog(wal).to_json()))
    rng = random.Random(5)
    # records the issue named: standby and logical message counts, heap main data cut short
    wanted = [(8, 0x10), (8, 0x20), (21, 0x00), (10, 0x00), (10, 0x10), (10, 0x20), (9, 0x50)]
    for n, (rmid, info) in enumerate(wanted):
        recs = [r for r in wal.records if r.rmid == rmid and r.info & 0xF0 == info]
        if not recs:
            continue
        rec = recs[len(recs) // 2]
        if rmid in (8, 21):  # a count at the start of the main data made huge
            d = bytearray(rec.data)
            at = rec.main_data_off + (12 if (rmid, info) == (8, 0x20) else
                                      16 if rmid == 21 else 0)
            d[at:at + 4] = (0x7FFFFFF0).to_bytes(4, "little")
            data = bytes(d)
        else:
            data = None
            for _ in range(50):
                data = mutate(rng, rec, "shorten") or mutate(rng, rec, "shift")
                if data is not None:
                    break
            if data is None:
                continue
        work = tmp_path / f"cli{n}"
        work.mkdir()
        for segno, buf in wal.patched(rec, data).items():
            (work / wal.source({segno: buf}).name_of(wal.tli, segno)).write_bytes(buf)
        for args in (["dump", str(work), "--format", "waldump", "-b", "-s", str(rec.lsn)],
                     ["dump", str(work), "-s", str(rec.lsn), "-n", "50"],
                     ["replay", str(work), "--catalog", str(cat_file), "--all",
                      "--format", "jsonl"]):
            res = subprocess.run([sys.executable, "-m", "xlogtools.cli", *args],
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode in (0, 1), (args, res.returncode, res.stderr[-2000:])
            assert "Traceback" not in res.stderr, (args, res.stderr[-2000:])
            if args[0] == "dump" and "waldump" in args:
                first = res.stdout.splitlines()[0] if res.stdout else ""
                assert rec.lsn.waldump() in first or rmid not in (8, 21), (first, res.stderr)
                if rmid in (8, 21):
                    assert "past the end of the record" in first, first[:300]
        shutil.rmtree(work)


# files this suite's author does not own: a crash found in one of them is reported as an
# expected failure naming the file, with the case that reproduces it, for its owner to fix
def failure(where: str, exc: BaseException) -> str:
    """One line naming a crash: where, the exception, and the line that raised it."""
    tb = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{where}: {type(exc).__name__}: {exc} ({Path(tb.filename).name}:{tb.lineno} {tb.name})"


def _write(wal: Wal, segs: dict[int, bytes], dest: Path, upto: int | None = None) -> Path:
    """Segments as files; with upto, the WAL cut at that LSN (a standby that got less)."""
    dest.mkdir()
    seg_size = wal.cluster.seg_size
    for segno, buf in sorted(segs.items()):
        if upto is not None and segno * seg_size >= upto:
            break
        if upto is not None and upto < (segno + 1) * seg_size:
            buf = buf[:upto - segno * seg_size]
        (dest / wal.source({segno: buf}).name_of(wal.tli, segno)).write_bytes(buf)
    return dest


@pytest.mark.parametrize("major", MAJORS, ids=[f"pg{m}" for m in MAJORS])
def test_xact_damage_in_gap_and_locate(major: int, tmp_path: Path) -> None:
    """Commit and abort records changed with their CRC made right, on a primary whose standby
    stopped at the page before them: gap (which parses them as lost transactions) and locate
    (which reports the last commit) give a result or an XlogError."""
    from xlogtools.gap import analyze
    from xlogtools.locate import locate

    wal = fixture_wal(major, tmp_path)
    ends = [i for i, r in enumerate(wal.records) if r.rmid == 1 and r.info & 0x70 in (0, 0x20)]
    rng = random.Random(77 + major)
    failures: list[str] = []
    for case in range(20):
        i = ends[-1 - rng.randrange(min(len(ends), 4))]
        rec = wal.records[i]
        kind = rng.choice(("payload", "count", "count", "shift", "shorten", "info"))
        data = mutate(rng, rec, kind)
        if data is None:
            continue
        where = f"case {case} (seed {77 + major}): {kind} of the {rec.rmgr_name} record at {rec.lsn}"
        segs = wal.patched(rec, data)
        primary = _write(wal, segs, tmp_path / f"p{case}")
        cut = int(rec.lsn) - int(rec.lsn) % wal.cluster.block_size
        standby = _write(wal, wal.segments, tmp_path / f"s{case}", cut)
        for what, run in (("gap", lambda: analyze([primary], [standby])),
                          ("locate", lambda: locate([primary]))):
            try:
                with budget(20.0):
                    run()
            except XlogError:
                pass
            except (Hang, Exception) as exc:  # noqa: BLE001 - the point of the test
                failures.append(failure(f"{what}: {where}", exc))
        shutil.rmtree(primary)
        shutil.rmtree(standby)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("size", [24, 30, 39])
def test_segment_file_of_24_to_39_bytes_is_a_typed_end(size: int, tmp_path: Path) -> None:
    major = 15 if 15 in MAJORS else MAJORS[-1]
    segs = unpack_fixture(major, tmp_path / "wal")
    segs[1].write_bytes(segs[1].read_bytes()[:size])
    from xlogtools.parse.api import open_wal
    reader = open_wal(tmp_path / "wal")
    n = sum(1 for _ in reader)
    assert n and reader.end_of_wal is not None
    assert reader.end_of_wal.reason.value == "truncated_segment"


if __name__ == "__main__":  # python tests/test_fuzz_crc.py MAJOR [CASE ...]
    import tempfile

    m = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as d:
        w = fixture_wal(m, Path(d))
        o = Outcome()
        for c in (map(int, sys.argv[2:]) if len(sys.argv) > 2 else range(CASES)):
            run_case(w, probe_catalog(w), probe_columns(), m, c, o)
        print(o.kinds, o.decoded, o.skipped, o.marked)
        print("\n".join(o.failures))
