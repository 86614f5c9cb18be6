"""The typed decoders of parse/rmgr (xact.decode, xlog.checkpoint), its one rmgr table, and
parse/pgtime, on the committed fixture WAL of every major (no cluster needed)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from oracle import unpack_fixture

from xlogtools.errors import RecordDataError
from xlogtools.parse import layout as L
from xlogtools.parse import pgtime
from xlogtools.parse.api import open_wal
from xlogtools.parse.rmgr import RMGRS, ids, xact, xlog
from xlogtools.parse.xacttrack import XactOutcomes
from xlogtools.replay.xact import XactTracker

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MAJORS = [m for m in (13, 14, 15, 16, 17, 18) if (FIXTURES / f"pg{m}" / "meta.json").exists()]


@pytest.fixture(scope="module", params=MAJORS)
def records(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list:
    d = tmp_path_factory.mktemp(f"pg{request.param}")
    unpack_fixture(request.param, d)
    return list(open_wal([str(d)]))


def test_one_rmgr_table() -> None:
    assert tuple(r.name for r in RMGRS) == ids.RMGR_NAMES == L.RMGR_NAMES
    assert [r.rmid for r in RMGRS] == list(range(len(ids.RMGR_NAMES)))
    assert (L.RM_XLOG_ID, L.RM_XACT_ID, L.RM_LOGICALMSG_ID) == (0, 1, 21)
    assert ids.RM_HEAP_ID == 10 and RMGRS[ids.RM_HEAP_ID].name == "Heap"
    assert L.rmgr_name(200) == "custom200" and L.rmgr_name(30) == "unknown30"
    assert L.XLOG_SWITCH == xlog.SWITCH and L.XLOG_CHECKPOINT_ONLINE == xlog.CHECKPOINT_ONLINE


def test_xact_decode(records: list) -> None:
    kinds = set()
    for rec in records:
        if rec.rmid != ids.RM_XACT_ID:
            continue
        r = xact.decode(rec)
        assert r == xact.decode(rec, strict=False)  # valid WAL: both readings agree
        if r is None:
            continue
        kinds.add(r.kind)
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.xid = 0  # type: ignore[misc]
        if r.kind == "assignment":
            assert r.subxids
            continue
        if r.kind in ("commit_prepared", "abort_prepared"):
            assert r.xid == r.twophase_xid != 0
        elif r.kind != "prepare":
            assert r.xid == rec.xid
        assert pgtime.pg_timestamp(r.time) is not None
        # cut short: strict refuses it, lenient reads zeros
        short = dataclasses.replace(rec, main_data_len=min(rec.main_data_len, 5))
        with pytest.raises(RecordDataError):
            xact.decode(short)
        with pytest.raises(RecordDataError):
            XactTracker().feed(short)  # the replay engine's reading of it
        assert xact.decode(short, strict=False) is not None
    assert {"commit", "abort", "prepare", "commit_prepared", "abort_prepared"} <= kinds


def test_tracker_knows_every_outcome(records: list) -> None:
    t = XactTracker()
    ends = {}
    for rec in records:
        if rec.rmid == ids.RM_XACT_ID:
            e = t.feed(rec)
            if e is not None and not e.subxact:
                ends[e.top] = e.status
    assert ends and all(t.transactions[x].status == s for x, s in ends.items())
    for x, tx in t.transactions.items():
        assert all(t.top(s) == x for s in tx.subxids)


def test_shared_tracker_strict_and_lenient_agree(records: list) -> None:
    """On valid WAL the strict (replay) and lenient (gap) readings of the shared tracker give
    the same events and the same subtransaction map, and replay's tracker ends what it ends;
    a record cut short raises in the strict one and changes nothing, the lenient one reads it."""
    strict, lenient, replay = XactOutcomes(strict=True), XactOutcomes(strict=False), XactTracker()
    events = []
    for rec in records:
        for t in (strict, lenient, replay.outcomes):
            t.see(rec)  # the top-level xid records carry (wal_level=logical)
        if rec.rmid != ids.RM_XACT_ID:
            continue
        e, f = strict.feed(rec), lenient.feed(rec)
        assert e == f
        ended = replay.feed(rec)
        if e is not None:
            events.append(e)
            if e.status == "prepared":
                assert ended is None
            else:
                assert ended is not None and (ended.top, ended.status, ended.subxact) == \
                    (e.parent, e.status, e.subxact)
    assert strict.top_of == lenient.top_of
    assert {e.status for e in events} == {"committed", "aborted", "prepared"}
    if records[0].pg_major >= 14:  # a rolled-back savepoint, its record naming its top (14+)
        assert any(e.subxact for e in events)
    for e in events:
        if e.subxact:
            assert e.parent != e.xid and strict.top(e.xid) == strict.top(e.parent)
    end = next(rec for rec in records if rec.rmid == ids.RM_XACT_ID
               and xact.decode(rec) is not None and xact.decode(rec).kind == "commit")
    short = dataclasses.replace(end, main_data_len=min(end.main_data_len, 5))
    before = dict(strict.top_of)
    with pytest.raises(RecordDataError):
        strict.feed(short)
    assert strict.top_of == before
    assert lenient.feed(short) is not None


def test_shared_tracker_ends_a_circle_of_parents() -> None:
    t = XactOutcomes()
    t.top_of.update({5: 5, 7: 8, 8: 7, 10: 11, 11: 12})
    assert t.top(5) == 5 and t.top(7) in (7, 8) and t.top(10) == 12 and t.top(3) == 3


def test_checkpoint(records: list) -> None:
    cps = [(rec, xlog.checkpoint(rec)) for rec in records if xlog.is_checkpoint(rec)]
    assert cps
    for rec, cp in cps:
        assert cp is not None and cp.timeline >= 1 and cp.redo <= int(rec.lsn)
        assert pgtime.unix_time(cp.time) is not None
        assert xlog.describe(rec).startswith(f"redo {cp.redo >> 32:X}/{cp.redo & 0xFFFFFFFF:X};")


def test_pgtime() -> None:
    assert pgtime.PG_EPOCH == dt.datetime.fromtimestamp(pgtime.PG_EPOCH_UNIX, dt.timezone.utc)
    t = pgtime.pg_timestamp(1_500_000)
    assert pgtime.format_time(t) == "2000-01-01 00:00:01.500000+00"
    assert pgtime.pg_timestamp(2 ** 62) is None and pgtime.format_time(None) is None
    assert pgtime.unix_time(0) == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def test_gap_tracker_ends_a_circle_of_parents() -> None:
    """Damaged records can name a transaction its own top-level one, or make two each other's:
    the gap tracker's walk to the top ends instead of looping."""
    from xlogtools.gap.analysis import _Tracker

    t = _Tracker(0, lambda rel: None)
    t.parent.update({5: 5, 7: 8, 8: 7, 10: 11, 11: 12})
    assert t.top(5) == 5
    assert t.top(7) in (7, 8)
    assert t.top(10) == 12 and t.top(3) == 3
