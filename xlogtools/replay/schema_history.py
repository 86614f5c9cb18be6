"""Schema history: the catalog in force at any LSN of a WAL range, from the WAL and the files of
a data directory (issue 13; the rules are in docs/catalog.md, "Schema as of an LSN").

    from xlogtools.replay.schema_history import SchemaHistory

    h = SchemaHistory.from_datadir("/evidence/data", ["/evidence/data/pg_wal"], dbname="app",
                                   start="0/3000028")
    rel, uncertain = h.relation_at((1663, 16390, 16412), Lsn("0/3000148"), xid=745)
    cat = h.catalog_at(Lsn("0/3000148"))     # the whole snapshot (a Catalog) in force there

One read of the WAL range (before the replay's own read) follows the heap records of the
catalogs a snapshot is made of (pg_class, pg_attribute, pg_type, pg_namespace, pg_index,
pg_enum) on their own page cache, as the replay does for tables (heap.HeapRedo): every tuple
version those pages ever held in the range is kept with its xmin, its xmax and the LSNs of the
records that wrote and ended it. The versions of a page come from its first full-page image in
the range when the page's first change in the range has one (the image holds every version
live at the start: the old ones too, with their xmax); otherwise from the data directory's
files, and such a page is *lossy*: the files show it after the range, what it held before may
be gone (pruned), and the relations with rows on it are `schema_uncertain`.

A version is in force at LSN L, for a reader transaction X, when its inserting transaction
committed at or before L (its commit record in the WAL read; before the range when the WAL
read has neither its commit nor its abort and it wrote nothing in the range: hint bits, else
pg_xact of the files), or X itself wrote it at or before L; and it was not ended the same way.
The catalog changes only at the commit LSNs of transactions that wrote catalog rows, so one
snapshot serves every LSN between two of them (cached), plus one per own write for the
transaction doing the DDL (CREATE TABLE then INSERT in one transaction).
"""
from __future__ import annotations

import os
import struct
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from ..errors import InputError, RecordDataError
from ..lsn import Lsn
from ..parse.api import open_wal
from ..parse.record import Record
from ..parse.xacttrack import XactOutcomes
from ..parse.rmgr import mxact, smgr
from . import syscat
from .catalog import Catalog, Relation
from .datadir_catalog import CatalogRows, assemble, catalog_filenodes, server_settings
from ..parse.rmgr.heap import DELETE, HOT_UPDATE, INIT_PAGE, INPLACE, INSERT, OPMASK, TRUNCATE, UPDATE
from ..parse.rmgr.heap2 import MULTI_INSERT
from ..parse.rmgr.ids import RM_HEAP2_ID, RM_HEAP_ID, RM_MULTIXACT_ID, RM_SMGR_ID, RM_XACT_ID
from .heap import HeapRedo, RawChange
from .pages import PageCache, PageFormatError, parse_page
from .pgdata import (HEAP_LOCK_MASK, HEAP_XMAX_COMMITTED, HEAP_XMAX_EXCL_LOCK,
                     HEAP_XMAX_INVALID, HEAP_XMAX_IS_MULTI, HEAP_XMAX_LOCK_ONLY,
                     HEAP_XMIN_COMMITTED, HEAP_XMIN_FROZEN, HEAP_XMIN_INVALID, DataDir,
                     check_heap_page)

CATALOGS = ("pg_class", "pg_attribute", "pg_type", "pg_namespace", "pg_index", "pg_enum")
BEFORE = -1  # "committed before the range"
_II = struct.Struct("<II").unpack_from
_H = struct.Struct("<H").unpack_from
_CACHE_SIZE = 64
PathArg = str | os.PathLike[str]


@dataclass(slots=True)
class Version:
    """One tuple version of a catalog row."""

    cat: str
    blk: int
    off: int
    tup: bytes
    xmin: int
    xmax: int = 0  # the xid that deleted or updated it (0: none; a lock is none)
    ins_lsn: Lsn | None = None  # the record that wrote it, when in the WAL read
    del_lsn: Lsn | None = None  # the record that ended it, when in the WAL read
    row: dict[str, Any] | None = None
    bad: bool = False  # does not deform with the catalog's layout


@dataclass
class Snapshot:
    """The catalog in force at one LSN (for one reader), with what replay asks of it."""

    catalog: Catalog
    rewrites: set[int]  # oids of the transient relations of a table rewrite (relrewrite set)
    renderer: Any = None  # the replay's Renderer for this catalog (made by the replay)
    uncertain: dict[int, bool] = field(default_factory=dict)  # relation oid -> is_uncertain


class SchemaHistory:
    """The catalogs of one database followed through a WAL range (see the module docstring).
    `start_catalog` is the snapshot of the files (the state after the range, or after the
    last checkpoint before a crash): the fallback where the WAL cannot tell."""

    def __init__(self, dd: DataDir, records: Iterable[Record], dbname: str | None = None
                 ) -> None:
        self.dd = dd
        self.major = dd.major
        self.settings = server_settings(dd)
        drow, gmap, lmap, nodes = catalog_filenodes(dd, dbname)
        self.database, self.gmap, self.lmap = drow, gmap, lmap
        self.dboid, self.dbspc = int(drow["oid"]), int(drow["dattablespace"])
        self.cat_of = {(self.dbspc, self.dboid, node): cat for cat, node in nodes.items()}
        self.file_of = {cat: dd.db_dir(self.dbspc, self.dboid) / str(node)
                        for cat, node in nodes.items()}
        self.warnings: list[str] = []
        self.versions: dict[tuple[str, int, int, int], Version] = {}
        self.at_tid: dict[tuple[str, int, int], Version] = {}
        self.page_first: dict[tuple[str, int], str] = {}  # 'image' | 'init' | 'lossy'
        self.commit_lsn: dict[int, Lsn] = {}
        self.abort_lsn: dict[int, Lsn] = {}
        # which transaction each subtransaction belongs to (strict: a damaged transaction
        # record is a warning, its transaction's catalog changes count as not committed)
        self.xacts = XactOutcomes(strict=True)
        self.written: set[int] = set()  # xids that wrote any record in the range
        self.multi_updaters: dict[int, int] = {}  # multixact -> updating member (0: none)
        self.moved_before: Lsn | None = None  # a catalog moved to another file there
        self.catalog_writes: list[tuple[int, Lsn]] = []  # (xid, lsn) of catalog row writes
        self._relfile_changes: list[tuple[Lsn, int, Version, Version]] = []
        self._heap_truncates: set[tuple[int, int]] = set()  # (xid, relid) of TRUNCATE records
        self._file_pages = self._read_files()
        self.cache = PageCache()
        self.records = 0
        self._scan(records)
        self._finish()
        self.start_catalog = assemble(dd, CatalogRows(
            drow, gmap, lmap, *[self._file_rows(c) for c in CATALOGS]), self.settings)
        self._cache: dict[tuple[int, int, int], Snapshot] = {}

    @classmethod
    def from_datadir(cls, pgdata: PathArg, paths: Sequence[PathArg] | PathArg | None = None,
                     *, dbname: str | None = None, start: Lsn | str | int | None = None,
                     end: Lsn | str | int | None = None, timeline: int | None = None
                     ) -> "SchemaHistory":
        """Follow database `dbname` of data directory `pgdata` through the WAL in `paths`
        (default: pgdata's pg_wal) from `start` to `end`."""
        dd = DataDir(pgdata)
        wal = paths if paths else [pgdata]
        return cls(dd, open_wal(wal, start=start, end=end, timeline=timeline), dbname)

    @property
    def problems(self) -> list[str]:
        """What reading the files and the WAL skipped or could not tell, once each."""
        return list(dict.fromkeys([*self.dd.problems, *self.warnings]))

    # -- the files --------------------------------------------------------------------------------
    def _read_files(self) -> dict[tuple[str, int], bytes]:
        """Every page of the catalogs' files (checksums verified by DataDir.pages: a page that
        fails is reported and left out)."""
        out: dict[tuple[str, int], bytes] = {}
        for (spc, db, node), cat in self.cat_of.items():
            for _path, blkno, page in self.dd.pages(spc, db, node, cat):
                out[(cat, blkno)] = page
        return out

    def _merge_file_page(self, cat: str, blk: int) -> None:
        page = self._file_pages.get((cat, blk))
        if page is None:
            return
        try:
            check_heap_page(page, self.dd.block_size)
            items = parse_page(page)
        except PageFormatError as exc:
            self.warnings.append(f"{cat}: invalid page in block {blk} of {self.file_of[cat]}: "
                                 f"{exc}; its rows are not used")
            self.page_first[(cat, blk)] = "lossy"
            return
        for off, item in items.items():
            if isinstance(item, bytes) and len(item) >= 24:
                self._merge(cat, blk, off, item)

    def _file_rows(self, cat: str) -> list[dict[str, Any]]:
        """The rows of the files visible in the state they show (the start catalog)."""
        out = []
        for (c, blk), page in sorted(self._file_pages.items()):
            if c != cat:
                continue
            try:
                check_heap_page(page, self.dd.block_size)
                items = parse_page(page)
            except PageFormatError:
                continue
            for off in sorted(items):
                tup = items[off]
                if isinstance(tup, bytes) and len(tup) >= 24 and self.dd.tuple_visible(tup):
                    row = self._row(Version(cat, blk, off, tup, 0))
                    if row is not None:
                        out.append(row)
        return out

    # -- versions ---------------------------------------------------------------------------------
    def _deleter(self, tup: bytes) -> int:
        """The xid that ended a tuple by its header (0: not ended; a lock ends nothing)."""
        xmax: int = _II(tup, 0)[1]
        im = _H(tup, 20)[0]
        if im & HEAP_XMAX_INVALID or xmax == 0:
            return 0
        if im & HEAP_XMAX_LOCK_ONLY or im & (HEAP_XMAX_IS_MULTI | HEAP_LOCK_MASK) == \
                HEAP_XMAX_EXCL_LOCK:
            return 0
        if im & HEAP_XMAX_IS_MULTI:  # its members from the WAL read, else pg_multixact
            got = self.multi_updaters.get(xmax)
            return got if got is not None else self.dd.multi_updater(xmax) or 0
        return xmax

    def _merge(self, cat: str, blk: int, off: int, tup: bytes, lsn: Lsn | None = None,
               xid: int = 0) -> Version:
        """A tuple seen on a page (an image, the files) or written by a record: the version it
        is, made or brought up to date (the latest content wins: in-place updates)."""
        xmin = _II(tup, 0)[0]
        key = (cat, blk, off, xmin)
        v = self.versions.get(key)
        if v is None:
            v = self.versions[key] = Version(cat, blk, off, tup, xmin)
        else:
            v.tup, v.row, v.bad = tup, None, False
        if lsn is not None and xid and xmin == xid and v.ins_lsn is None:
            v.ins_lsn = lsn
        x = self._deleter(tup)
        if x and x != v.xmax and (not v.xmax or v.xmax in self.abort_lsn):
            v.xmax = x
            v.del_lsn = lsn if lsn is not None and x == xid else None
        self.at_tid[(cat, blk, off)] = v
        return v

    def _row(self, v: Version) -> dict[str, Any] | None:
        if v.row is None and not v.bad:
            try:
                v.row = next(syscat.rows(iter([v.tup]), self.major, v.cat, self.file_of[v.cat]))
            except (InputError, StopIteration) as exc:
                v.bad = True
                self.warnings.append(f"{v.cat}: the tuple version at ({v.blk},{v.off}) "
                                     f"(xmin {v.xmin}) is damaged and not used: {exc}")
                self.page_first[(v.cat, v.blk)] = "lossy"
        return v.row

    # -- the WAL read -----------------------------------------------------------------------------
    def _scan(self, records: Iterable[Record]) -> None:
        redo = HeapRedo(self.cache, lambda rel: rel in self.cat_of, lambda rel: False,
                        lambda tup: None)
        for rec in records:
            self.records += 1
            if rec.xid:
                self.written.add(rec.xid)
                self.xacts.see(rec)
            rmid = rec.rmid
            if rmid == RM_XACT_ID:
                self._xact(rec)
                continue
            if rmid == RM_SMGR_ID and rec.info & 0xF0 == smgr.CREATE and \
                    len(rec.main_data) >= 16:
                spc, db, node, fork = struct.unpack_from("<IIIi", rec.main_data, 0)
                if fork == 0 and (spc, db, node) in self.cat_of:  # the file a catalog has at
                    self._catalog_moved(rec.lsn, self.cat_of[(spc, db, node)])  # the end
                continue
            if rmid == RM_MULTIXACT_ID:
                created = mxact.create_members(rec)
                if created is not None:
                    self.multi_updaters[created[0]] = next(
                        (x for x, st in created[1] if st in mxact.MULTIXACT_UPDATE_STATUSES), 0)
                continue
            touched = [b for b in rec.blocks if b.fork == 0 and b.relation in self.cat_of]
            if not touched:
                if rmid == RM_HEAP_ID and rec.info & OPMASK == TRUNCATE:
                    self._note_truncate(rec)
                continue
            op = rec.info & OPMASK
            modifies = (rmid == RM_HEAP_ID and op in (INSERT, DELETE, UPDATE, HOT_UPDATE,
                                                       INPLACE)) or \
                (rmid == RM_HEAP2_ID and op == MULTI_INSERT)
            for b in touched:
                cat = self.cat_of[b.relation]
                if (cat, b.blk) in self.page_first:
                    continue
                if b.has_image and b.apply_image:
                    self.page_first[(cat, b.blk)] = "image"
                elif modifies and rec.info & INIT_PAGE and b.will_init:
                    self.page_first[(cat, b.blk)] = "init"  # begins empty: known too
                elif modifies:
                    self.page_first[(cat, b.blk)] = "lossy"
                    self._merge_file_page(cat, b.blk)
            try:
                if rmid in (RM_HEAP_ID, RM_HEAP2_ID):
                    raws = redo.redo(rec)
                else:
                    redo.apply_images(rec)  # XLOG FPI, FPI_FOR_HINT
                    raws = []
            except RecordDataError as exc:
                self.warnings.append(f"{exc}; the catalog pages it touches are taken from the "
                                     f"files, their relations are schema_uncertain")
                for b in touched:
                    self._lossy(self.cat_of[b.relation], b.blk)
                continue
            for b in touched:
                if b.has_image and b.apply_image:
                    cat = self.cat_of[b.relation]
                    page = self.cache.get((b.spc, b.db, b.rel, b.blk))
                    if page is None or not page.complete:  # the image did not restore
                        self.warnings.append(f"the full-page image of {cat} block {b.blk} at "
                                             f"{rec.lsn} is damaged; the page is taken from "
                                             f"the files")
                        self._lossy(cat, b.blk)
                        continue
                    for off, item in page.items.items():
                        if isinstance(item, bytes) and len(item) >= 24:
                            self._merge(cat, b.blk, off, item, rec.lsn, rec.xid)
            for raw in raws:
                self._change(rec, raw)
            if rmid == RM_HEAP_ID and op == INPLACE and len(rec.main_data) >= 2:
                b0 = touched[0]
                page = self.cache.get((b0.spc, b0.db, b0.rel, b0.blk))
                off = _H(rec.main_data, 0)[0]
                tup = page.tuple(off) if page is not None else None
                v = self.at_tid.get((self.cat_of[b0.relation], b0.blk, off))
                if tup is not None and v is not None:
                    v.tup, v.row = v.tup[:24] + tup[24:], None  # content only: the header
                    # (hint bits) stays as the version had it

    def _catalog_moved(self, lsn: Lsn, cat: str) -> None:
        """The file of a catalog followed here was created in the range (VACUUM FULL or
        CLUSTER of the catalog: smgr CREATE). The files name the file it has at the end, which
        is the one followed: from the rewrite's images on it is known, before them only the
        rows the rewrite kept are (the old file is not followed)."""
        if self.moved_before is None or lsn > self.moved_before:
            self.moved_before = lsn
        self.warnings.append(f"{cat} was rewritten into a new file at {lsn} (VACUUM FULL or "
                             f"CLUSTER of a catalog): the old file is not followed, every "
                             f"change before that is schema_uncertain")

    def _lossy(self, cat: str, blk: int) -> None:
        if self.page_first.get((cat, blk)) != "lossy":
            self.page_first[(cat, blk)] = "lossy"
            self._merge_file_page(cat, blk)

    def _change(self, rec: Record, raw: RawChange) -> None:
        cat = self.cat_of[raw.rel]
        old: Version | None = None
        if raw.op in ("update", "delete"):
            blk, off = raw.old_tid or (raw.blk, raw.offnum)
            old = self.at_tid.get((cat, blk, off))
            if old is None or old.xmax not in (0, rec.xid) and old.xmax not in self.abort_lsn:
                self._lossy(cat, blk)  # the version it ended is not known
                old = None
            elif old.xmax != rec.xid:  # (an xmax that aborted ends nothing: replaced)
                old.xmax, old.del_lsn = rec.xid, rec.lsn
        if raw.op in ("insert", "update"):
            if raw.new is None or raw.new_unknown:
                self._lossy(cat, raw.blk)
            else:
                new = self._merge(cat, raw.blk, raw.offnum, raw.new, rec.lsn, rec.xid)
                if old is not None and cat == "pg_class":
                    self._relfile_changes.append((rec.lsn, rec.xid, old, new))
        self.catalog_writes.append((rec.xid, rec.lsn))

    def _note_truncate(self, rec: Record) -> None:
        d = rec.main_data
        if len(d) >= 12:
            n = struct.unpack_from("<I", d, 4)[0]
            if len(d) >= 12 + 4 * n:
                for relid in struct.unpack_from(f"<{n}I", d, 12):
                    self._heap_truncates.add((rec.xid, relid))

    def _xact(self, rec: Record) -> None:
        try:
            ev = self.xacts.feed(rec)
        except RecordDataError as exc:
            self.warnings.append(f"{exc}; that transaction's catalog changes count as not "
                                 f"committed")
            return
        if ev is None or ev.status == "prepared":
            return
        r = ev.record
        if ev.status == "committed":
            for x in (ev.xid, *r.subxids):
                self.commit_lsn[x] = r.lsn
        else:
            for x in (ev.xid, *r.subxids):
                self.abort_lsn.setdefault(x, r.lsn)

    def _finish(self) -> None:
        for (cat, blk) in self._file_pages:
            if (cat, blk) not in self.page_first:  # not changed in the range: the files
                self._merge_file_page(cat, blk)
        # in file order, as the files' catalog reads them (assemble keeps the last of twins)
        self._ordered = sorted(self.versions.values(), key=lambda v: (v.cat, v.blk, v.off))
        # epochs: the commits that changed what a catalog row version others see
        xids = {v.xmin for v in self.versions.values()} | \
            {v.xmax for v in self.versions.values() if v.xmax}
        self.boundaries = sorted({int(self.commit_lsn[x]) for x in xids if x in self.commit_lsn})
        self.own_writes: dict[int, list[int]] = {}
        for x, lsn in self.catalog_writes:
            self.own_writes.setdefault(self.top(x), []).append(int(lsn))
        for x, lsn in self.abort_lsn.items():  # a rolled-back savepoint with DDL in it
            top = self.top(x)
            if top != x and top in self.own_writes:
                self.own_writes[top].append(int(lsn))
        for lst in self.own_writes.values():
            lst.sort()
        self.members: dict[int, set[int]] = {}
        for x in set(self.xacts.top_of) | set(self.own_writes):
            self.members.setdefault(self.top(x), {self.top(x)}).add(x)
        # what the lossy pages hold: their relations, types and schemas are uncertain
        self.uncertain_oids: set[int] = set()
        self.uncertain_types: set[int] = set()
        self.uncertain_schemas: set[str] = set()
        for v in self.versions.values():
            if self.page_first.get((v.cat, v.blk)) != "lossy":
                continue
            row = self._row(v)
            if row is None:
                continue
            if v.cat == "pg_class":
                self.uncertain_oids.add(row["oid"])
            elif v.cat == "pg_attribute":
                self.uncertain_oids.add(row["attrelid"])
            elif v.cat == "pg_index":
                self.uncertain_oids.add(row["indrelid"])
            elif v.cat == "pg_type":
                self.uncertain_types.add(row["oid"])
            elif v.cat == "pg_enum":
                self.uncertain_types.add(row["enumtypid"])
            elif v.cat == "pg_namespace":
                self.uncertain_schemas.add(row["nspname"])
        # TOAST tables of any time (the replay gathers their chunks)
        self.toast_nodes: set[tuple[int, int, int]] = set()
        self.toast_by_oid: dict[int, tuple[int, int, int]] = {}
        for v in self.versions.values():
            if v.cat != "pg_class":
                continue
            row = self._row(v)
            if row is not None and row["relkind"] == "t" and row["relfilenode"]:
                loc = (int(row["reltablespace"]) or self.dbspc, self.dboid,
                       int(row["relfilenode"]))
                self.toast_nodes.add(loc)
                self.toast_by_oid[row["oid"]] = loc
        self.truncations = self._truncations()
        # every file a table (or its TOAST table) had in the range, for the replay's counts
        self.table_nodes: set[tuple[int, int, int]] = set(self.toast_nodes)
        for v in self.versions.values():
            row = self._row(v) if v.cat == "pg_class" else None
            if row is not None and row["relkind"] in ("r", "m") and row["relfilenode"] and \
                    row["oid"] >= 16384:
                self.table_nodes.add((int(row["reltablespace"]) or self.dbspc, self.dboid,
                                      int(row["relfilenode"])))

    def _truncations(self) -> dict[int, list[tuple[int, int]]]:
        """TRUNCATE as the catalog shows it (at wal_level replica there is no TRUNCATE
        record): a pg_class row updated to a new relfilenode in its own tablespace by a
        transaction that made no transient copy of it (relrewrite: VACUUM FULL, CLUSTER,
        ALTER TABLE rewrites, REFRESH MATERIALIZED VIEW) -> {lsn: [(xid, relid)]}."""
        transient: set[tuple[int, int]] = set()  # (top xid, oid rewritten)
        for v in self.versions.values():
            if v.cat == "pg_class" and v.ins_lsn is not None:
                row = self._row(v)
                if row is not None and row["relrewrite"]:
                    transient.add((self.top(v.xmin), row["relrewrite"]))
        heap_truncated = {(self.top(x), r) for x, r in self._heap_truncates}
        out: dict[int, list[tuple[int, int]]] = {}
        for lsn, xid, old, new in self._relfile_changes:
            a, b = self._row(old), self._row(new)
            if a is None or b is None or a["oid"] != b["oid"] or b["relkind"] not in "rm":
                continue
            if a["relfilenode"] == b["relfilenode"] or a["reltablespace"] != b["reltablespace"]:
                continue
            key = (self.top(xid), b["oid"])
            if key in transient or key in heap_truncated or b["relrewrite"]:
                continue
            out.setdefault(int(lsn), []).append((xid, b["oid"]))
        return out

    def top(self, xid: int) -> int:
        return self.xacts.top(xid)

    # -- visibility -------------------------------------------------------------------------------
    def _committed_at(self, xid: int, committed_hint: bool, invalid_hint: bool) -> int | None:
        """The commit LSN of `xid`, BEFORE when it committed before the range, None when it
        did not commit within what the WAL read and the files show."""
        c = self.commit_lsn.get(xid)
        if c is not None:
            return int(c)
        if xid in self.abort_lsn:
            return None
        if xid < 3:
            return BEFORE if xid else None
        if xid in self.written:  # began in the range and did not commit in it
            return None
        if committed_hint:
            return BEFORE
        if invalid_hint:
            return None
        return BEFORE if self.dd.committed(xid) else None

    def _visible(self, v: Version, lsn: int, fam: set[int]) -> bool:
        im = _H(v.tup, 20)[0]
        if v.xmin in fam:
            if v.ins_lsn is not None and int(v.ins_lsn) > lsn:
                return False
            a = self.abort_lsn.get(v.xmin)
            if a is not None and int(a) <= lsn:
                return False
        else:
            frozen = im & HEAP_XMIN_FROZEN == HEAP_XMIN_FROZEN
            c = BEFORE if frozen else self._committed_at(
                v.xmin, bool(im & HEAP_XMIN_COMMITTED), bool(im & HEAP_XMIN_INVALID))
            if c is None or c > lsn:
                return False
        x = v.xmax
        if not x:
            return True
        if x in fam:
            if v.del_lsn is not None and int(v.del_lsn) > lsn:
                return True
            a = self.abort_lsn.get(x)
            return a is not None and int(a) <= lsn
        c = self._committed_at(x, bool(im & HEAP_XMAX_COMMITTED and _II(v.tup, 0)[1] == x),
                               False)
        return c is None or c > lsn

    # -- the catalog as of an LSN -----------------------------------------------------------------
    def snapshot_at(self, lsn: Lsn | str | int, xid: int = 0) -> Snapshot:
        """The catalog in force at `lsn` as transaction `xid` (0: none) sees it."""
        at = int(lsn if isinstance(lsn, int) else Lsn(lsn))
        top = self.top(xid) if xid else 0
        own = self.own_writes.get(top) if top else None
        key = (bisect_right(self.boundaries, at), top if own else 0,
               bisect_right(own, at) if own else 0)
        snap = self._cache.get(key)
        if snap is None:
            fam = self.members.get(top, {top}) if own else set()
            snap = self._build(at, fam)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = snap
        return snap

    def catalog_at(self, lsn: Lsn | str | int, xid: int = 0) -> Catalog:
        return self.snapshot_at(lsn, xid).catalog

    def _build(self, at: int, fam: set[int]) -> Snapshot:
        rows: dict[str, list[dict[str, Any]]] = {c: [] for c in CATALOGS}
        for v in self._ordered:
            if self._visible(v, at, fam):
                row = self._row(v)
                if row is not None:
                    rows[v.cat].append(row)
        rewrites = {r["oid"] for r in rows["pg_class"] if r["relrewrite"]}
        before = len(self.dd.problems)
        try:
            cat = assemble(self.dd, CatalogRows(self.database, self.gmap, self.lmap,
                                                *[rows[c] for c in CATALOGS]), self.settings)
        except Exception as exc:  # noqa: BLE001 - damaged rows must not stop the replay
            self.warnings.append(f"the catalog as of {Lsn(max(at, 0))} could not be assembled "
                                 f"({type(exc).__name__}: {exc}); the files' catalog is used "
                                 f"there, its changes are schema_uncertain")
            return Snapshot(self.start_catalog, set(), None)
        for p in self.dd.problems[before:]:
            self.warnings.append(f"as of {Lsn(max(at, 0))}: {p}")
        del self.dd.problems[before:]
        cat.captured_lsn = str(Lsn(max(at, 0)))
        return Snapshot(cat, rewrites)

    def relation_at(self, locator: tuple[int, int, int], lsn: Lsn | str | int, xid: int = 0
                    ) -> tuple[Relation | None, bool]:
        """(the relation file `locator` belongs to at `lsn` as `xid` sees it, whether that is
        uncertain). Not in the catalog at that LSN but in the files' catalog: the files'
        relation, uncertain. None: no relation (or the transient copy of a rewrite)."""
        snap = self.snapshot_at(lsn, xid)
        moved = self.moved_before is not None and \
            int(Lsn(lsn) if isinstance(lsn, str) else lsn) < int(self.moved_before)
        r = snap.catalog.by_locator.get(locator)
        if r is None:
            r = self.start_catalog.by_locator.get(locator)
            return r, r is not None
        if r.oid in snap.rewrites:
            return None, False
        unc = snap.uncertain.get(r.oid)
        if unc is None:
            unc = snap.uncertain[r.oid] = self.is_uncertain(r)
        return r, unc or moved

    def is_uncertain(self, r: Relation) -> bool:
        return r.oid in self.uncertain_oids or r.schema in self.uncertain_schemas or any(
            c.type_oid in self.uncertain_types for c in r.columns if not c.dropped)

    def lossy_pages(self) -> list[tuple[str, int]]:
        return sorted(k for k, s in self.page_first.items() if s == "lossy")


__all__ = ["SchemaHistory", "Snapshot", "Version"]
