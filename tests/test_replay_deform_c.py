"""The C deformer (xlogtools/replay/_deform.c) against the Python path: the same rows, notes
and warnings on the edge-value WAL of tests/test_replay_edge_values.py (every column type of
the replay tests, in UTC and in other zones), and on that WAL's tuples with their bytes
mutated (truncated, bits flipped, lengths and header bytes changed) the C path never crashes
and, where it answers, gives exactly the Python deformer's datums and the Python output
functions' text; where Python raises, C declines (None)."""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_replay_edge_values import ZONES, scenario  # noqa: E402,F401 - the module fixture

from xlogtools.replay import engine, tuples  # noqa: E402
from xlogtools.replay import types as T  # noqa: E402
from xlogtools.replay.api import Replay  # noqa: E402

pytestmark = pytest.mark.skipif(tuples.NATIVE is None, reason="the C deformer is not built "
                                                          "(or XLOGTOOLS_NO_C=1)")


def _rows(sc: dict[str, Any], timezone: str) -> tuple[list[Any], list[str], list[str]]:
    rp = Replay([sc["cluster"].pg_wal], sc["cat"], start=sc["start"], timezone=timezone)
    rows = [ch.to_dict() for ch in rp]
    return rows, list(rp.warnings), list(rp.errors)


@pytest.mark.parametrize("tz", ("UTC", *ZONES))
def test_c_and_python_paths_give_the_same_rows(scenario: dict[str, Any], tz: str,  # noqa: F811
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = tuples.NATIVE

    def counting(*a: Any) -> Any:
        res = real.deform_render(*a)
        calls.append(res is not None)
        return res

    monkeypatch.setattr(engine, "_C_DEFORM", counting)
    with_c = _rows(scenario, tz)
    assert calls and any(calls), "the C path was not used"
    monkeypatch.setattr(engine, "_C_DEFORM", None)
    without = _rows(scenario, tz)
    assert with_c == without


def _python(tup: bytes, columns: list[Any], major: int) -> list[Any] | None:
    try:
        return tuples.deform(tup, columns, major)
    except (tuples.TupleError, IndexError, ValueError):
        return None


_KIND_OUT = {1: T.BOOL, 2: T.INT2, 3: T.INT4, 4: T.INT8, 5: T.OID, 6: T.TEXT, 7: T.TIMESTAMP,
             8: T.TIMESTAMPTZ}


def _mutations(tup: bytes, rnd: random.Random) -> list[bytes]:
    out = [tup[:n] for n in range(0, len(tup), max(1, len(tup) // 20))]
    for _ in range(60):
        b = bytearray(tup)
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(b))
            b[i] = rnd.choice((0, 1, 2, 3, 0xFF, 0x80, rnd.randrange(256),
                               b[i] ^ 1 << rnd.randrange(8)))
        out.append(bytes(b))
    return out


def test_mutated_tuples_c_declines_or_agrees(scenario: dict[str, Any],  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, Any]] = []
    real = tuples.NATIVE

    def recording(tup: bytes, plan: Any, missing: Any) -> Any:
        seen.append((bytes(tup), plan))
        return real.deform_render(tup, plan, missing)

    monkeypatch.setattr(engine, "_C_DEFORM", recording)
    _rows(scenario, "UTC")
    assert seen
    cat = scenario["cat"]
    rel = cat.find_table("t_edge")[0]
    columns = rel.columns
    ctx = T.OutputContext("UTC", cat.encoding, cat.major)
    rnd = random.Random(11)
    plan = tuples.c_plan(columns, True, True)
    checked = 0
    for tup, p in seen:
        if p != plan:
            continue
        for m in [tup, *_mutations(tup, rnd)]:
            res = real.deform_render(m, plan, tuples.MISSING)
            py = _python(m, columns, cat.major)
            if res is None:
                continue
            assert py is not None, "C answered where Python raises"
            datums, texts = res
            assert datums == py
            for (attlen, _, kind), d, t in zip(plan, datums, texts):
                if t is None:
                    continue
                assert type(d) is bytes
                try:
                    want = T.SCALAR_OUT[_KIND_OUT[kind]](d, ctx)
                except tuples.DATA_ERRORS:
                    want = None
                assert t == want
            checked += 1
    assert checked > 100


def test_odd_arguments_do_not_crash() -> None:
    C = tuples.NATIVE
    assert C.deform_render(b"", (), None) is None
    assert C.deform_render(bytes(23), ((4, 3, 3),), None) is None  # t_hoff 0
    with pytest.raises(TypeError):
        C.deform_render(b"", [], None)
    hdr = bytearray(24)
    hdr[18] = 1  # natts 1
    hdr[22] = 24
    assert C.deform_render(bytes(hdr) + b"\1\0\0\0", ((4, 3, 3),), None) == ([b"\1\0\0\0"],
                                                                              ["1"])
    assert C.deform_render(bytes(hdr) + b"\1\0\0", ((4, 3, 3),), None) is None
    assert C.deform_render(bytes(hdr) + b"\1\0\0\0", ((4, 9, 3),), None) is None
    assert C.deform_render(bytes(hdr) + b"\1\0\0\0", ((4, 3),), None) is None


def test_commit_time_text_equals_the_python_output() -> None:
    rnd = random.Random(7)
    vals = [T.INT64_MIN, T.INT64_MAX, T.MIN_TIMESTAMP, T.MIN_TIMESTAMP - 1, T.END_TIMESTAMP - 1,
            T.END_TIMESTAMP, 0, -1, 1, 2**64, -2**70]
    vals += [rnd.randrange(T.MIN_TIMESTAMP - 10**15, T.END_TIMESTAMP + 10**15)
             for _ in range(20000)]
    vals += [rnd.randrange(-10**13, 10**13) for _ in range(20000)]
    for v in vals:
        try:
            want = T.timestamptz_usecs_out(v)
        except T.BadDatum:
            want = None
        assert tuples.NATIVE.timestamptz_utc(v) == want, v
