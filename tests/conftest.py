"""pytest plugin: real PostgreSQL clusters for every supported major version.

* ``--pg-versions 13,14,...`` (default: all of 13..18, or ``$XLOGTOOLS_PG_VERSIONS``) picks the
  majors; ``XLOGTOOLS_PG_INSTALL=1`` installs missing ones first (see xlogtools.testing.pgbin).
* A test that takes a ``pg_major`` argument is parametrized over those majors (ids ``pg13``...);
  a major without binaries is reported SKIPPED with pgbin's reason, never silently passed.
  ``@pytest.mark.pg_majors(17, 18)`` narrows a test to some majors.  The parametrization is
  module-scoped so tests are grouped by major and module-scoped fixtures may use ``pg_major``.
* ``cluster_factory(major=None, *, name=None, start=True, **Cluster options)`` makes clusters
  (initialized, started) that are destroyed at teardown; ``primary_standby(...)`` makes a started
  primary plus a streaming standby.  ``module_cluster_factory`` is the module-scoped variant.
  ``XLOGTOOLS_KEEP_CLUSTERS=1`` keeps their directories (servers are stopped anyway).
* The session ends with a summary of which majors ran and which were skipped, and why.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xlogtools.testing import pgbin
from xlogtools.testing.cluster import Cluster, Unavailable, make_standby

pytest_plugins = ["pytester"]  # tests/test_harness.py checks this plugin's skip reporting

_STATUS = pytest.StashKey[dict[int, "Path | str"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xlogtools", "xlogtools PostgreSQL clusters")
    group.addoption("--pg-versions", default=os.environ.get("XLOGTOOLS_PG_VERSIONS",
                                                            ",".join(map(str, pgbin.MAJORS))),
                    help="comma-separated PostgreSQL majors to test on (default: %(default)s); "
                         "XLOGTOOLS_PG_INSTALL=1 installs missing ones")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pg: needs real PostgreSQL server binaries")
    config.addinivalue_line("markers", "pg_majors(*majors): run only on these PostgreSQL majors")
    config.pluginmanager.register(_Summary(config), "xlogtools-pg-summary")


def requested_majors(config: pytest.Config) -> list[int]:
    raw = str(config.getoption("--pg-versions"))
    try:
        majors = [int(x) for x in re.split(r"[,\s]+", raw.strip()) if x]
    except ValueError:
        raise pytest.UsageError(f"--pg-versions: expected numbers like 13,17, got {raw!r}")
    bad = [m for m in majors if m not in pgbin.MAJORS]
    if bad:
        raise pytest.UsageError(f"--pg-versions: unsupported {bad}; supported: {pgbin.MAJORS}")
    return majors


def pg_status(config: pytest.Config) -> dict[int, Path | str]:
    """bindir or reason per requested major, computed (and installed, if asked) once."""
    if _STATUS not in config.stash:
        install = os.environ.get("XLOGTOOLS_PG_INSTALL", "") == "1"
        config.stash[_STATUS] = pgbin.ensure(requested_majors(config), install=install)
    return config.stash[_STATUS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pg_major" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "pg_major" in (names if isinstance(names, (list, tuple)) else
                          [n.strip() for n in str(names).split(",")]):
            return  # the test chose its majors itself
    status = pg_status(metafunc.config)
    majors = list(status)
    only = metafunc.definition.get_closest_marker("pg_majors")
    if only is not None:
        majors = [m for m in majors if m in only.args]
    params = []
    for major in majors:
        marks: list[Any] = [pytest.mark.pg]
        if isinstance(status[major], str):
            marks.append(pytest.mark.skip(reason=str(status[major])))
        params.append(pytest.param(major, id=f"pg{major}", marks=marks))
    if not params:
        params = [pytest.param(None, id="pg-none", marks=pytest.mark.skip(
            reason="none of this test's PostgreSQL majors was requested (--pg-versions)"))]
    metafunc.parametrize("pg_major", params, scope="module")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # user_properties travel with the reports (also from xdist workers) to the summary.
    for item in items:
        callspec = getattr(item, "callspec", None)
        major = callspec.params.get("pg_major") if callspec is not None else None
        if major is not None:
            item.user_properties.append(("pg_major", major))
        # with `pytest -n N --dist loadgroup` (xdist) a module's tests of one major run in one
        # worker, so its module-scoped clusters are made once there, not once per worker
        item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__ if item.module else ''}"
                                                f":{major}"))


class _Summary:
    """Counts outcomes per major (from report.user_properties, so xdist works) for the summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: dict[int, Counter[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        major = dict(report.user_properties).get("pg_major")
        if major is None or (report.when != "call" and report.outcome == "passed"):
            return
        kind = "error" if report.failed and report.when != "call" else report.outcome
        self.counts.setdefault(int(major), Counter())[kind] += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.counts:
            return
        status = self.config.stash.get(_STATUS, None) or pgbin.ensure(
            requested_majors(self.config), install=False)
        ran, skipped = [], []
        for major in sorted(set(self.counts) | set(status)):
            c = self.counts.get(major, Counter())
            if c["passed"] or c["failed"] or c["error"]:
                detail = ", ".join(f"{n} {k}" for k, n in sorted(c.items()) if n)
                ver = f" [{pgbin.version(major)}]" if isinstance(status.get(major), Path) else ""
                ran.append(f"{major}{ver} ({detail})")
            else:
                why = status.get(major)
                skipped.append((major, why if isinstance(why, str)
                                else f"all {c['skipped']} of its tests were skipped"))
        terminalreporter.section("PostgreSQL majors")
        terminalreporter.write_line("ran: " + ("; ".join(ran) if ran else "none"))
        if skipped:
            terminalreporter.write_line("skipped: " + ", ".join(str(m) for m, _ in skipped))
            for major, why in skipped:
                terminalreporter.write_line(f"  {major}: {why}")


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def pg_cluster_root() -> Iterator[Path]:
    """A 0755 directory in /tmp for cluster dirs: the postgres OS user must reach it, and
    pytest's tmp_path sits under a 0700 root-owned directory; short, for unix socket paths."""
    root = Path(tempfile.mkdtemp(prefix="xlt-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    if os.environ.get("XLOGTOOLS_KEEP_CLUSTERS") != "1":
        shutil.rmtree(root, ignore_errors=True)


class ClusterFactory:
    """Creates clusters under one root and tears all of them down at the end of its scope."""

    _seq = itertools.count(1)

    def __init__(self, root: Path, default_major: int | None, label: str) -> None:
        self.root = root
        self.default_major = default_major
        self.label = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:24]
        self.clusters: list[Cluster] = []

    def _base(self, name: str | None) -> Path:
        return self.root / f"{next(self._seq):03d}-{name or self.label}"

    def _major(self, major: int | None) -> int:
        major = major if major is not None else self.default_major
        if major is None:
            raise pytest.UsageError("cluster_factory: pass major= or use the pg_major parameter")
        return major

    def __call__(self, major: int | None = None, *, name: str | None = None,
                 start: bool = True, **opts: Any) -> Cluster:
        base = self._base(name)
        try:
            cluster = Cluster(self._major(major), base, name=name or base.name, **opts)
            self.clusters.append(cluster)
            cluster.init()
            if start:
                cluster.start()
        except Unavailable as exc:
            pytest.skip(exc.reason)
        return cluster

    def standby(self, primary: Cluster, *, name: str | None = None, start: bool = True,
                conf: dict[str, object] | None = None) -> Cluster:
        base = self._base(name or "standby")
        sb = make_standby(primary, base, start=False, conf=conf, name=name or base.name)
        self.clusters.append(sb)
        if start:
            sb.start()
        return sb

    def destroy_all(self) -> None:
        keep = os.environ.get("XLOGTOOLS_KEEP_CLUSTERS") == "1"
        for cluster in reversed(self.clusters):  # standbys before their primaries
            if keep:
                cluster.stop("immediate")
            else:
                cluster.destroy()
        self.clusters.clear()


def _factory(request: pytest.FixtureRequest, root: Path) -> ClusterFactory:
    major = request.getfixturevalue("pg_major") if "pg_major" in request.fixturenames else None
    return ClusterFactory(root, major, request.node.name)


@pytest.fixture
def cluster_factory(request: pytest.FixtureRequest, pg_cluster_root: Path
                    ) -> Iterator[ClusterFactory]:
    factory = _factory(request, pg_cluster_root)
    yield factory
    factory.destroy_all()


@pytest.fixture(scope="module")
def module_cluster_factory(request: pytest.FixtureRequest, pg_cluster_root: Path
                           ) -> Iterator[ClusterFactory]:
    """Module-scoped factory; pass major= explicitly: pytest does not re-create a
    module-scoped fixture when the module-scoped pg_major parameter moves to the next major,
    so a default captured here would be the first major's."""
    factory = ClusterFactory(pg_cluster_root, None, request.node.name)
    yield factory
    factory.destroy_all()


@pytest.fixture
def primary_standby(cluster_factory: ClusterFactory) -> Any:
    """Factory: ``primary_standby(major=None, *, standby_conf=None, **opts) -> (primary, standby)``,
    both started; the standby streams from the primary (pg_basebackup -R)."""

    def make(major: int | None = None, *, standby_conf: dict[str, object] | None = None,
             **opts: Any) -> tuple[Cluster, Cluster]:
        primary = cluster_factory(major, name=opts.pop("name", "primary"), **opts)
        return primary, cluster_factory.standby(primary, conf=standby_conf)

    return make


@pytest.fixture
def pg_bindir(pg_major: int) -> Path:
    return pgbin.bindir(pg_major)


@pytest.fixture(scope="session")
def server_cert(pg_cluster_root: Path) -> tuple[Path, Path]:
    """A self-signed certificate for CN=localhost and its key (for TLS tests)."""
    d = pg_cluster_root / "cert"
    d.mkdir(exist_ok=True)
    crt, key = d / "server.crt", d / "server.key"
    if not crt.exists():
        subprocess.run(["openssl", "req", "-new", "-x509", "-days", "2", "-nodes",
                        "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(crt),
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                       check=True, capture_output=True, timeout=60)
        crt.chmod(0o644)  # clients running as the server user read it (sslrootcert)
    return crt, key
