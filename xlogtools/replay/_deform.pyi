# Stub of the C extension _deform.c (heap tuple deforming and rendering of common types).
from _typeshed import ReadableBuffer

from .tuples import CPlan, Datum

# timestamptz_out in UTC of microseconds since 2000-01-01; None when out of range
def timestamptz_utc(usecs: int, /) -> str | None: ...
# (datums, texts: the text of each column it renders itself, else None), or None: the tuple
# is for the Python path (tuples.deform); `missing` stands for attributes beyond natts
def deform_render(tup: ReadableBuffer, plan: CPlan, missing: object, /
                  ) -> tuple[list[Datum], list[str | None]] | None: ...
