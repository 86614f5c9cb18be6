"""Odd values on a real server: a table with every column type of the replay tests, filled
with the edge values of each type (float4/float8 at their limits, denormals, NaN, +-Infinity,
-0; numeric NaN and +-Infinity; dates and timestamps at +-infinity, 4713 BC and 294276 AD;
empty and nested arrays with NULLs), inserted, updated and deleted: replay's values are what
psql printed for them, on each major; with the catalog's array types left out too (arrays by
the column's element_type_oid). Then the float output functions against the server's own
float4out/float8out on random bit patterns, and the WAL of this workload fuzzed with its CRC
made right (as tests/test_fuzz_crc.py does with the fixtures) through the full replay.
"""
from __future__ import annotations

import os
import random
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzzwal import KINDS, Hang, Wal, budget, mutate  # noqa: E402
from test_replay import BIG_EXT, BIG_EXT_COMP, Session, column_defs, row_values  # noqa: E402

from xlogtools.errors import XlogError  # noqa: E402
from xlogtools.lsn import Lsn  # noqa: E402
from xlogtools.replay import types as T  # noqa: E402
from xlogtools.replay.api import Replay  # noqa: E402
from xlogtools.replay.catalog import Catalog, capture  # noqa: E402

EXTRA = [("c_f4arr", "float4[]"), ("c_f8arr", "float8[]"), ("c_datearr", "date[]"),
         ("c_ivarr", "interval[]"), ("c_boolarr", "bool[]"), ("c_jsonbarr", "jsonb[]"),
         ("c_mood_arr", "mood[]"), ("c_bytea_arr", "bytea[]"), ("c_uuid_arr", "uuid[]")]


ZONES = ("America/New_York", "Asia/Kolkata")  # a DST zone, and one with an LMT of odd seconds


def edge_rows(major: int) -> list[dict[str, str]]:
    """Column -> SQL literal for each edge row (other columns keep row_values())."""
    inf = major >= 14  # numeric +-Infinity exists from 14 on
    num_inf = ("'Infinity'", "'-Infinity'") if inf else ("'NaN'", "'0'")
    iv_inf = ("'infinity'", "'-infinity'") if major >= 17 else (
        "'178000000 years'", "'-178000000 years'")
    # the largest time part (INT64_MAX microseconds); 13-14 read at most INT32_MAX hours
    big_iv = ("'2147483646 mons 2147483647 days 2562047788:00:54.775807'" if major >= 15
              else "'2147483646 mons 2147483647 days 2147483647:59:59.999999'")
    return [
        {"c_f4": "'3.4028235e+38'", "c_f8": "'1.7976931348623157e+308'", "c_num": "'NaN'",
         "c_date": "'infinity'", "c_ts": "'infinity'", "c_tstz": "'-infinity'",
         "c_arr": "'{}'", "c_arr2": "'{{\"\",NULL},{\"x y\",NULL}}'",
         "c_arrn": "'{NaN,1.5,NULL}'", "c_interval": iv_inf[0],
         "c_f4arr": "'{3.4028235e+38,-3.4028235e+38,1e-45,NaN,Infinity,-Infinity,-0}'",
         "c_f8arr": "'{1.7976931348623157e+308,5e-324,-0,NaN,-Infinity}'",
         "c_datearr": "'{infinity,-infinity,4713-01-01 BC,294276-12-31,NULL}'",
         "c_ivarr": "'{}'", "c_boolarr": "'{{t,f},{NULL,t}}'",
         "c_jsonbarr": "'{\"{\\\"a\\\": [1, null]}\",null,\"[]\"}'",
         "c_mood_arr": "'{sad,NULL,happy}'", "c_bytea_arr": "'{\"\\\\x00ff\",NULL}'",
         "c_uuid_arr": "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'",
         "c_ext": BIG_EXT, "c_big": BIG_EXT_COMP},  # TOAST: out of line, and compressed
        {"c_f4": "'-3.4028235e+38'", "c_f8": "'-1.7976931348623157e+308'",
         "c_num": num_inf[0], "c_date": "'4713-01-01 BC'",
         "c_ts": "'4713-11-24 00:00:00 BC'", "c_tstz": "'4713-11-24 00:00:00+00 BC'",
         "c_arr": "'{{{1,NULL}},{{3,4}}}'", "c_arr2": "'{}'",
         "c_arrn": "'{}'" if not inf else "'{Infinity,-Infinity,NaN}'",
         "c_interval": iv_inf[1], "c_f4arr": "'{}'", "c_f8arr": "'{{1,2},{NULL,3}}'",
         "c_datearr": "'[-2:-1]={2000-01-01,4713-11-24 BC}'",
         "c_ivarr": "'{\"-178000000 years\",\"1 day -00:00:00.000001\"}'"},
        {"c_f4": "'1e-45'", "c_f8": "'5e-324'", "c_num": num_inf[1],
         "c_date": "'-infinity'", "c_ts": "'294276-12-31 23:59:59.999999'",
         "c_tstz": "'294276-12-31 23:59:59.999999+00'", "c_arr": "'{NULL}'",
         "c_arr2": "'{NULL,\"NULL\",\"\"}'", "c_arrts":
         "'{infinity,-infinity,\"4713-11-24 00:00:00+00 BC\",\"294276-12-31 23:59:59.999999+00\"}'",
         "c_datearr": "'{5874897-12-31}'"},
        {"c_f4": "'NaN'", "c_f8": "'NaN'", "c_date": "'5874897-12-31'",
         "c_ts": "'-infinity'", "c_tstz": "'infinity'", "c_arr": "'[-5:-4]={1,2}'",
         "c_money": "'-92233720368547758.08'", "c_timetz": "'24:00:00-15:59:59'",
         "c_time": "'24:00:00'", "c_int2": "'-32768'", "c_int8": "'-9223372036854775808'"},
        {"c_f4": "'Infinity'", "c_f8": "'Infinity'", "c_num": "'-0.000'",
         "c_tstz": "'0001-01-01 00:00:00+00 BC'", "c_timetz": "'00:00:00+15:59:59'",
         "c_money": "'92233720368547758.07'", "c_int4": "'-2147483648'",
         "c_oid": "'4294967295'", "c_num2": "'-99999999.9999'"},
        {"c_f4": "'-Infinity'", "c_f8": "'-Infinity'", "c_interval": "'-2147483648 days'"},
        {"c_f4": "'-0'", "c_f8": "'-0'", "c_f4arr": "'{-1e-45,1.1754944e-38,16777217}'"},
        {"c_f4": "'1.1754944e-38'", "c_f8": "'2.2250738585072014e-308'",
         "c_interval": big_iv},
    ]


def cols_for(major: int) -> list[tuple[str, str]]:
    return [c for c in column_defs(major) if c[0] != "c_gone"] + EXTRA


def values(i: int, major: int, edge: dict[str, str]) -> dict[str, str]:
    cols = cols_for(major)
    base = row_values(i, [c for c in cols if c[0] not in dict(EXTRA)])
    base.update({n: "NULL" for n, _ in EXTRA})
    base.update(edge)
    return {n: base[n] for n, _ in cols}


def insert_sql(rows: list[dict[str, str]]) -> str:
    names = list(rows[0])
    return (f"INSERT INTO t_edge ({', '.join(names)}) VALUES "
            + ", ".join("(" + ", ".join(r[n] for n in names) + ")" for r in rows)
            + " RETURNING *")


@pytest.fixture(scope="module")
def scenario(pg_major: int, module_cluster_factory: Any) -> dict[str, Any]:
    c = module_cluster_factory(pg_major, name="edge", conf={"autovacuum": "off",
                                                            "TimeZone": "Asia/Kolkata"})
    c.execute("CREATE DATABASE app;")
    s = Session(c, "app")
    s.conn.execute("CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
    cols = cols_for(pg_major)
    s.conn.execute("CREATE TABLE t_edge (" + ", ".join(f"{n} {t}" for n, t in cols) + ")")
    s.conn.commit()
    cat = capture(f"host={c.host} port={c.port} user=postgres dbname=app")
    c.execute("CHECKPOINT;")
    start = Lsn(c.current_lsn())
    rows = [values(i + 1, pg_major, e) for i, e in enumerate(edge_rows(pg_major))]
    want: list[tuple[str, Any, Any]] = []
    for r in s.rows(insert_sql(rows)):
        want.append(("insert", None, r))
    s.conn.commit()
    # as ::text, to see where psql's display differs (documented in docs/replay.md)
    as_text = s.rows("SELECT " + ", ".join(f"{n}::text AS {n}" for n, _ in cols)
                     + " FROM t_edge ORDER BY id")
    shown = s.where("t_edge", "true")
    zoned = {}
    for tz in ZONES:
        s.conn.execute(f"SET TimeZone = '{tz}'")
        zoned[tz] = s.rows("SELECT id, c_tstz, c_arrts FROM t_edge ORDER BY id")
    s.conn.execute("SET TimeZone = 'UTC'")
    # updates move the edge values between rows: old and new are both edge values
    before = {r["id"]: r for r in shown}
    for r in s.rows("UPDATE t_edge SET c_f4 = -c_f4, c_f8 = c_f8 * -1, "
                    "c_arr = c_arr || ARRAY[NULL::int], c_date = c_date, "
                    "c_f4arr = c_f4arr, c_num = c_num WHERE id % 2 = 1 RETURNING *"):
        want.append(("update", before[r["id"]], r))
    s.conn.commit()
    before = {r["id"]: r for r in s.where("t_edge", "true")}
    for r in s.rows("DELETE FROM t_edge RETURNING *"):
        want.append(("delete", before[r["id"]], None))
    s.conn.commit()
    s.conn.close()
    c.execute("SELECT pg_switch_wal();")
    return {"cluster": c, "cat": cat, "start": start, "want": want, "as_text": as_text,
            "shown": shown, "cols": cols, "zoned": zoned}


def replayed(sc: dict[str, Any], cat: Catalog, timezone: str = "UTC"
             ) -> list[tuple[str, Any, Any]]:
    rp = Replay([sc["cluster"].pg_wal], cat, start=sc["start"], timezone=timezone)
    got = []
    for ch in rp:
        if ch.table != "t_edge":
            continue
        assert not ch.notes, (ch.lsn, ch.op, ch.notes)
        assert ch.new_complete and ch.old_complete, (ch.lsn, ch.notes)
        got.append((ch.op, ch.old if ch.op != "insert" else None,
                    ch.new if ch.op != "delete" else None))
    assert not rp.errors and not [w for w in rp.warnings if "internal" in w], rp.warnings
    return got


def assert_same(want: list[tuple[str, Any, Any]], got: list[tuple[str, Any, Any]]) -> None:
    assert [w[0] for w in want] == [g[0] for g in got]
    for (op, wold, wnew), (_, gold, gnew) in zip(want, got):
        for w, g in ((wold, gold), (wnew, gnew)):
            if w is None:
                assert g is None
                continue
            diff = {k: (w[k], g.get(k)) for k in w if w[k] != g.get(k)}
            assert not diff, f"{op} id {w['id']}: (psql, replay) {diff}"


def test_edge_values_replay_as_psql_prints_them(scenario: dict[str, Any]) -> None:
    assert_same(scenario["want"], replayed(scenario, scenario["cat"]))


def test_arrays_from_element_type_without_the_array_types_in_the_catalog(
        scenario: dict[str, Any]) -> None:
    """A catalog written by hand with the documented schema: columns with their
    element_type_oid, and `types` only for what is not built in (the enum)."""
    doc = scenario["cat"].to_json()
    arrays = [k for k, t in doc["types"].items() if t.get("element_type_oid")]
    assert len(arrays) >= 10, arrays
    doc["types"] = {k: t for k, t in doc["types"].items() if t["kind"] == "e"}
    assert len(doc["types"]) == 1
    bare = Catalog.from_json(doc)
    assert_same(scenario["want"], replayed(scenario, bare))


@pytest.mark.parametrize("tz", ZONES)
def test_timestamptz_edges_in_other_zones(scenario: dict[str, Any], tz: str) -> None:
    """--timezone: the far years outside Python's datetime (294276 AD, 4713 BC) too."""
    got = {g[2]["id"]: g[2] for g in replayed(scenario, scenario["cat"], tz) if g[0] == "insert"}
    for row in scenario["zoned"][tz]:
        assert {k: got[row["id"]][k] for k in row} == row, tz


# Columns whose `::text` is not what psql shows for them: char(n) drops its padding, bool
# casts to 'true'/'false' where psql shows t/f, inet casts with its netmask ('10.0.0.1/32').
# Replay prints what psql shows; docs/replay.md says so.
TEXT_CAST_DIFFERS = {"c_bpchar": "padding", "c_bool": "true", "c_inet": "/32"}


def test_where_psql_display_and_text_cast_differ_it_is_documented(
        scenario: dict[str, Any]) -> None:
    differ = {k for t, s in zip(scenario["as_text"], scenario["shown"]) for k in t
              if t[k] != s[k]}
    assert differ <= set(TEXT_CAST_DIFFERS), differ
    assert "c_bpchar" in differ and "c_bool" in differ, differ
    doc = (Path(__file__).resolve().parent.parent / "docs" / "replay.md").read_text()
    section = doc[doc.index("## Values and `::text`"):]
    for word in TEXT_CAST_DIFFERS.values():
        assert word in section, word


def test_float_output_equals_the_servers_on_random_bits(scenario: dict[str, Any]) -> None:
    """float4out/float8out against the server's: random bit patterns over every exponent,
    denormals included, read in as 9 / 17 significant digits (which round-trip)."""
    rng = random.Random(scenario["cluster"].major)
    f4 = [struct.pack("<I", rng.getrandbits(32)) for _ in range(3000)]
    f4 = [b for b in f4 if struct.unpack("<f", b)[0] == struct.unpack("<f", b)[0]]
    f4 += [struct.pack("<I", n) for n in (1, 2, 0x7FFFFF, 0x800000, 0x7F7FFFFF, 0x4B800001)]
    f8 = [struct.pack("<Q", rng.getrandbits(64)) for _ in range(3000)]
    f8 = [b for b in f8 if struct.unpack("<d", b)[0] == struct.unpack("<d", b)[0]]
    # midpoints that Python's repr takes and PostgreSQL's Ryu does not (1e23), small integers
    f8 += [struct.pack("<d", x) for x in (1e23, 2.0 ** 60, 9007199254740991.0, 5e-324,
                                           1.7976931348623157e308, 2.2250738585072014e-308)]
    c = scenario["cluster"]
    for width, vals, fmt, ours in ((4, f4, "<f", T.float4out), (8, f8, "<d", T.float8out)):
        lits = [repr(float(struct.unpack(fmt, b)[0])) if width == 8
                else "%.9g" % struct.unpack(fmt, b)[0] for b in vals]
        typ = "float4" if width == 4 else "float8"
        got = c.sql(f"SELECT string_agg(v::{typ}::text, ' ' ORDER BY o) FROM unnest("
                    f"string_to_array('{' '.join(lits)}', ' ')) WITH ORDINALITY AS u(v, o)")
        theirs = str(got[0][0]).split(" ")
        mine = [ours(b) for b in vals]
        bad = [(lit, t, m) for lit, t, m in zip(lits, theirs, mine) if t != m]
        assert not bad, f"{typ}: {len(bad)} differ, e.g. {bad[:5]}"


def test_crc_valid_mutations_of_this_wal_through_the_full_replay(
        scenario: dict[str, Any]) -> None:
    wal = Wal.load([scenario["cluster"].pg_wal])
    cat = scenario["cat"]
    heap = [i for i, r in enumerate(wal.records) if r.rmid in (1, 9, 10)
            and r.lsn >= scenario["start"]]
    rng = random.Random(7)
    failures, results, skipped, raw_values = [], 0, 0, 0
    cases = int(os.environ.get("XLOGTOOLS_FUZZ_REPLAY_CASES", "300"))
    for case in range(cases):
        i = rng.choice(heap)
        rec = wal.records[i]
        kind = rng.choice(KINDS)
        data = mutate(rng, rec, kind)
        if data is None:
            continue
        where = f"case {case}: {kind} of {rec.rmgr_name} record at {rec.lsn}"
        try:
            with budget(5.0):
                rp = Replay(wal.source(wal.patched(rec, data)), cat, start=scenario["start"],
                            include="all")
                for ch in rp:
                    ch.to_dict()
                    raw_values += sum("shown as raw bytes" in n for n in ch.notes)
                internal = [w for w in rp.warnings if "internal error" in w]
                assert not internal, f"{where}: {internal}"
                skipped += len(rp.errors)
            results += 1
        except XlogError:
            results += 1
        except (Hang, Exception) as exc:  # noqa: BLE001 - the point of the test
            failures.append(f"{where}: {type(exc).__name__}: {exc}")
    assert not failures, "\n".join(failures[:20])
    assert results > cases // 2
    assert skipped, "no mutation reached the checks of heap and xact records"
    assert raw_values, "no mutation reached a value that is shown raw"
