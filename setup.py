"""Build step for the optional C walk of the WAL reader (xlogtools/parse/_walscan.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
package installs without it and the reader walks records in Python (same results, slower).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("xlogtools.parse._walscan", ["xlogtools/parse/_walscan.c"],
                             optional=True, extra_compile_args=["-O2"])])
