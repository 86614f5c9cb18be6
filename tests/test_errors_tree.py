"""Every exception class the package defines is an XlogError (errors.py: one error tree), so
that a caller can catch all of ours with one except clause; the bases callers caught before
(ValueError, RuntimeError) are kept next to it."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import xlogtools
from xlogtools.errors import XlogError

# Private control-flow exceptions: raised and caught inside one module, never seen by a caller.
_CONTROL_FLOW = {
    "xlogtools.parse.reader._Overwritten",  # a continuation overwritten: read on from the page
}

# Exception classes in files that are being changed on another branch (parse/rmgr/*,
# parse/layout.py, replay/xact.py, replay/api.py, replay/heap.py, gap.py, locate/*,
# export/dump.py, export/writers.py): they are put under XlogError after that branch is merged,
# and their names taken out of here. (None of those files defines one today.)
_PENDING: set[str] = set()

# Optional dependencies (the dask and spark extras) a module may need at import.
_OPTIONAL = {"dask", "distributed", "pandas", "pyspark"}


def _modules() -> list[ModuleType]:
    mods = []
    for info in pkgutil.walk_packages(xlogtools.__path__, "xlogtools."):
        try:
            mods.append(importlib.import_module(info.name))
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in _OPTIONAL:
                raise
    return mods


def _exception_classes() -> dict[str, type[BaseException]]:
    """qualified name -> class, for every exception class defined in a module of the package
    (at module level or nested in a class of it)."""
    found: dict[str, type[BaseException]] = {}
    for mod in _modules():
        todo = [o for o in vars(mod).values()
                if inspect.isclass(o) and o.__module__ == mod.__name__]
        while todo:
            cls = todo.pop()
            if issubclass(cls, BaseException):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
            todo += [o for o in vars(cls).values()
                     if inspect.isclass(o) and o.__module__ == mod.__name__
                     and o.__qualname__.startswith(cls.__qualname__ + ".")]
    return found


def test_every_exception_is_an_xlog_error() -> None:
    classes = _exception_classes()
    assert "xlogtools.parse.record.DecodeError" in classes  # the walk found the package's
    outside = sorted(name for name, cls in classes.items()
                     if not issubclass(cls, XlogError) and name not in _CONTROL_FLOW | _PENDING)
    assert outside == [], f"not under xlogtools.errors.XlogError: {outside}"


def test_allow_lists_are_current() -> None:
    """The names of the allow-lists exist, and those pending are still outside the tree (so
    that the list is emptied when they move in)."""
    classes = _exception_classes()
    assert sorted(_CONTROL_FLOW - classes.keys()) == []
    assert sorted(n for n in _PENDING if n not in classes or issubclass(classes[n], XlogError)) \
        == []


def test_old_bases_kept() -> None:
    """What callers caught before still catches these."""
    from xlogtools.export.pqstitch import ThriftError
    from xlogtools.parse.pglz import PglzError
    from xlogtools.replay.pages import PageFormatError
    from xlogtools.replay.tuples import TupleError
    from xlogtools.replay.types import BadDatum
    from xlogtools.testing.cluster import ClusterError

    for cls in (ThriftError, PglzError, PageFormatError, TupleError, BadDatum):
        assert issubclass(cls, ValueError), cls
    assert issubclass(ClusterError, RuntimeError)


def test_messages_unchanged() -> None:
    """str() and args are what Exception made of the same arguments."""
    from xlogtools.replay.tuples import Undecodable
    from xlogtools.stream.replcommands import CommandError
    from xlogtools.stream.retry import Retry
    from xlogtools.stream.scram import ScramError
    from xlogtools.stream.sessionio import Drop
    from xlogtools.testing.cluster import ClusterError

    for exc, text in ((Undecodable("\\x00", "why not"), "why not"),
                      (CommandError("42601", "syntax error", "detail"), "syntax error"),
                      (ScramError("08P01", "malformed SCRAM message"), "malformed SCRAM message"),
                      (Retry("server closed the connection", True), "server closed the connection"),
                      (ClusterError("initdb failed", 1, "stderr"), "initdb failed")):
        assert str(exc) == text and exc.args == (text,), exc
    assert str(Drop()) == ""
