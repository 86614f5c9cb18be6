"""The replay scenario of test_replay.py under more wal_level x wal_compression combinations
on a few majors (test_replay.py covers one combination per major)."""
from __future__ import annotations

from typing import Any

import pytest

from xlogtools.replay.api import Replay
from xlogtools.replay.catalog import capture
from xlogtools.testing import pgbin

from test_replay import CONF, check_against, run_workload

VARIANTS = [(14, "replica", "pglz"), (15, "replica", "off"), (15, "logical", "pglz"),
            (17, "logical", "lz4"), (18, "replica", "zstd")]


@pytest.mark.pg
@pytest.mark.parametrize("major, level, comp", VARIANTS,
                         ids=[f"pg{m}-{lv}-{c}" for m, lv, c in VARIANTS])
def test_scenario_values_under_variant(major: int, level: str, comp: str,
                                       cluster_factory: Any, request: Any) -> None:
    wanted = str(request.config.getoption("--pg-versions"))
    if str(major) not in wanted.replace(" ", "").split(","):
        pytest.skip(f"PostgreSQL {major} not requested (--pg-versions)")
    try:
        pgbin.bindir(major)
    except pgbin.Unavailable as exc:
        pytest.skip(exc.reason)
    c = cluster_factory(major, name=f"var{major}{comp}", wal_level=level, wal_compression=comp,
                        conf=CONF)
    sc = run_workload(c, logical=level == "logical")
    cat = capture(f"host={c.host} port={c.port} user=postgres dbname=app")
    rp = Replay([c.pg_wal], cat, start=sc.start, end=sc.end)
    check_against(sc, list(rp))
