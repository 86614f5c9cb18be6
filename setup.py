"""Build step for the optional C extensions: the WAL reader's walk of ordinary records
(xlogtools/parse/_walscan.c), pg_waldump's descriptions and lines for batches of records
(xlogtools/parse/_waldesc.c), a synchronous receiver's per-commit loop
(xlogtools/stream/_syncpump.c) and replay's deforming and rendering of common columns
(xlogtools/replay/_deform.c).

Everything else is in pyproject.toml. All are optional: without a C compiler the package
installs without them and the same work is done in Python (same results, slower).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("xlogtools.parse._walscan", ["xlogtools/parse/_walscan.c"],
                             include_dirs=["xlogtools/parse"],
                             depends=["xlogtools/parse/walrec.h", "xlogtools/parse/pgtime.h"],
                             optional=True, extra_compile_args=["-O2"]),
                   Extension("xlogtools.parse._waldesc", ["xlogtools/parse/_waldesc.c"],
                             depends=["xlogtools/parse/walrec.h", "xlogtools/parse/waldesc_util.h",
                                      "xlogtools/parse/waldesc_heap.h",
                                      "xlogtools/parse/waldesc_xact.h",
                                      "xlogtools/parse/waldesc_misc.h"],
                             optional=True, extra_compile_args=["-O2"]),
                   Extension("xlogtools.stream._syncpump", ["xlogtools/stream/_syncpump.c"],
                             optional=True, extra_compile_args=["-O2"]),
                   Extension("xlogtools.replay._deform", ["xlogtools/replay/_deform.c"],
                             include_dirs=["xlogtools/parse"],
                             depends=["xlogtools/parse/pgtime.h"],
                             optional=True, extra_compile_args=["-O2"])])
