"""The replay engine: WAL records -> row changes with old and new values, grouped by
transaction and emitted in commit order (DESIGN.md 4.4).

    rp = Replay(["/var/lib/postgresql/15/main"], Catalog.load("cat.json"))
    for ch in rp:                       # RowChange, committed transactions in commit order
        print(ch.commit_time, ch.op, ch.table, ch.old, ch.new)
    rp.transactions[1234].status        # 'committed' | 'aborted' | 'in_progress'
    rp.warnings                         # catalog mismatch, unknown relations, ...

Changes are held per transaction until its commit (or abort) record, as logical decoding's
reorder buffer does, because only then is the outcome known; what is still open at the end of
the WAL read is reported `in_progress`. The functions over it that most callers want
(`replay_changes`, `changes_by_xid`, `read_transactions`) are in `api.py`.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from ..errors import RecordDataError
from ..lsn import Lsn
from ..parse.api import PathArg, open_wal
from ..parse.source import WalSource
from ..parse.record import Record
from .catalog import Catalog, Relation
from ..parse.rmgr.ids import RM_HEAP2_ID, RM_HEAP_ID, RM_SMGR_ID, RM_XACT_ID
from .change import RowChange, relstr
from .heap import HeapRedo, RawChange
from .pages import PageCache
from .toast import ToastStore
from . import tuples as _tuples
from .tuples import MISSING, UNKNOWN, Renderer, TupleError, Undecodable, Unresolved, c_plan, deform
from .types import OutputContext, bytea_out
from .xact import Transaction, XactEnd, XactTracker

# the C deformer's deform_render (tuples.deform_render without its wrapper), or None
_C_DEFORM: Callable[[Any, Any, object], Any] | None = (
    _tuples.NATIVE.deform_render if _tuples.NATIVE is not None else None)

if TYPE_CHECKING:
    from .schema_history import SchemaHistory


class Replay:
    """Iterate for RowChange objects. `include`: 'committed' (default) or 'all' (aborted and
    in-progress ones too, marked). `tables`: names ('schema.table' or 'table') to keep;
    `xids`: top-level or subtransaction xids to keep."""

    def __init__(self, paths: Sequence[PathArg] | PathArg | WalSource | None,
                 catalog: "Catalog | SchemaHistory", *,
                 start: Lsn | str | int | None = None, end: Lsn | str | int | None = None,
                 timeline: int | None = None, tables: Iterable[str] = (),
                 xids: Iterable[int] = (), include: str = "committed",
                 timezone: str = "UTC", commit_from: Lsn | str | int | None = None,
                 all_relations: bool = False, progress: bool | None = False) -> None:
        if include not in ("committed", "all"):
            raise ValueError("include must be 'committed' or 'all'")
        from .schema_history import SchemaHistory

        # with a schema history each change is decoded with the catalog in force at its LSN;
        # `catalog` is then the files' one (names, encoding, the fallback)
        self.history = catalog if isinstance(catalog, SchemaHistory) else None
        if self.history is not None:
            catalog = self.history.start_catalog
        assert isinstance(catalog, Catalog)
        self.catalog = catalog
        self.reader = open_wal(paths, start=start, end=end, timeline=timeline)
        self.include = include
        self.xids = set(xids)
        self.progress = progress
        # False: only changes of relations the catalog names (user tables); the others are
        # counted in stats["skipped_changes"] (per relation: skipped_rels)
        self.all_relations = all_relations
        self.skipped_rels: Counter[str] = Counter()
        # read from `start` (e.g. a checkpoint's redo point, for the page images) but report
        # only transactions that end at or after `commit_from`
        self.commit_from = Lsn(commit_from) if commit_from is not None else None
        self.warnings: list[str] = []
        self.errors: list[RecordDataError] = []  # records skipped because they do not add up
        self.tables: set[tuple[int, int, int]] | None = None
        self.table_names = set(tables)
        self.table_oids: set[int] = set()
        tables = list(tables)
        if tables:
            self.tables = set()
            for name in tables:
                found = catalog.find_table(name)
                if not found and self.history is None:
                    self.warnings.append(f"table {name} is not in the catalog")
                self.tables.update(r.locator for r in found)
                self.table_oids.update(r.oid for r in found)
        self.ctx = OutputContext(timezone, catalog.encoding, catalog.major)
        # _deform.c renders text only in UTF8, timestamptz only in UTC
        self._utf8 = self.ctx.codec == "utf-8"
        self._utc = self.ctx._zone is None
        self.cache = PageCache()
        self.toast = ToastStore(catalog.major)
        self.toast.scan = self._scan_toast
        self.renderer = Renderer(catalog, self.toast, self.ctx)
        self.redo = HeapRedo(self.cache, self._follow, self._is_toast, self.toast.add_tuple)
        self._follow_cache: dict[tuple[int, int, int], bool] = {}
        self._plans: dict[int, tuple[Any, ...]] = {}  # _plan()
        self._toast_by_oid = {r.toast_oid: (r.tablespace_oid, r.database_oid,
                                            r.toast_relfilenode)
                              for r in catalog.relations if r.toast_oid and r.toast_relfilenode}
        if self.history is not None:
            self._toast_by_oid = {**self.history.toast_by_oid, **self._toast_by_oid}
            self.warnings.extend(self.history.problems)
        self.pending: dict[int, list[RowChange]] = {}
        self.xacts = XactTracker()  # outcomes; top_of: subtransaction -> its parent
        self.top_of: dict[int, int] = self.xacts.top_of
        self.transactions: dict[int, Transaction] = self.xacts.transactions
        self.stats: Counter[str] = Counter()
        self.other_db: Counter[int] = Counter()
        self.unknown_rels: Counter[tuple[int, int, int]] = Counter()
        self.known_rels_seen = 0
        if self.reader.sysid and catalog.system_identifier \
                and str(self.reader.sysid) != catalog.system_identifier:
            self.warnings.append(
                f"the catalog is from database system {catalog.system_identifier}, the WAL from "
                f"{self.reader.sysid}: relations will not match")
        if self.reader.start is not None:
            self.stats["start_lsn"] = int(self.reader.start)

    # -- relation predicates ----------------------------------------------------------------------
    def _follow(self, rel: tuple[int, int, int]) -> bool:
        got = self._follow_cache.get(rel)
        if got is None:
            spc, db, node = rel
            if db != self.catalog.database_oid:
                got = False
            elif node in self.catalog.system and rel not in self.catalog.by_locator \
                    and not self.all_relations:
                got = False
            else:
                got = True
            self._follow_cache[rel] = got
        return got

    def _is_toast(self, rel: tuple[int, int, int]) -> bool:
        return rel in self.catalog.by_toast or (
            self.history is not None and rel in self.history.toast_nodes)

    def _scan_toast(self, toastrelid: int) -> None:
        rel = self._toast_by_oid.get(toastrelid)
        rels = [rel] if rel is not None else [r for r in self.cache.by_rel if self._is_toast(r)]
        for r in rels:
            for page in self.cache.rel_pages(r):
                for item in page.items.values():
                    if isinstance(item, bytes):
                        self.toast.add_tuple(item)

    # -- the run ----------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[RowChange]:
        from ..export.progress import Progress, wal_span

        bar = Progress("replay", self.progress, *wal_span(self.reader))
        try:
            yield from self._run(bar)
        finally:
            bar.finish()

    def _run(self, bar: Any) -> Iterator[RowChange]:
        show = bar.enabled
        for rec in self.reader:
            self.stats["records"] += 1
            if show and not self.stats["records"] & 1023:
                bar.update(int(rec.lsn), self.stats["records"])
            rmid = rec.rmid
            if self.history is not None and int(rec.lsn) in self.history.truncations:
                self._catalog_truncate(rec)
            if rmid == RM_XACT_ID:
                yield from self._xact(rec)
            elif rmid in (RM_HEAP_ID, RM_HEAP2_ID, RM_SMGR_ID):
                self._note_rels(rec)
                self.toast.generation = self.redo.toast_generation
                try:
                    raws = self.redo.redo(rec)
                except RecordDataError as exc:
                    self._bad_record(exc)
                    raws = []
                for raw in raws:
                    self._add(raw)
                self.toast.generation = self.redo.toast_generation
            elif rec.blocks:
                self.redo.apply_images(rec)  # XLOG FPI, FPI_FOR_HINT, ...
        yield from self._finish()

    def _bad_record(self, exc: RecordDataError) -> None:
        """A record whose CRC is right but whose data does not add up: kept in `errors`,
        warned about, skipped."""
        self.errors.append(exc)
        self.stats["bad_records"] += 1
        self.warnings.append(f"{exc}; the record is skipped")

    def _note_rels(self, rec: Record) -> None:
        if rec.rmid == RM_SMGR_ID or not rec.blocks:
            return
        b = rec.blocks[0]
        rel = b.relation
        if b.db != self.catalog.database_oid:
            if b.db != 0:
                self.other_db[b.db] += 1
        elif rel in self.catalog.by_locator or self._is_toast(rel) or (
                self.history is not None and rel in self.history.table_nodes):
            self.known_rels_seen += 1
        elif self._follow(rel):
            self.unknown_rels[rel] += 1
        elif b.rel in self.catalog.system:
            self.stats["skipped_system_records"] += 1

    def _catalog_truncate(self, rec: Record) -> None:
        """TRUNCATE seen in the catalog (a new relfilenode; replica writes no TRUNCATE
        record): a truncate change, named as the table was then."""
        assert self.history is not None
        for xid, relid in self.history.truncations[int(rec.lsn)]:
            self._add(RawChange(rec.lsn, xid, rec.toplevel_xid, "truncate", (0, 0, 0),
                                relids=[relid]))

    def _wanted(self, r: Relation) -> bool:
        """--table: by the relation's name at the change's LSN, or its oid when the files'
        catalog has the name (a table renamed in the range)."""
        if self.tables is None:
            return True
        if self.history is None:
            return r.locator in self.tables
        return r.oid in self.table_oids or r.name in self.table_names or \
            r.qualified in self.table_names

    def _relation(self, raw: RawChange) -> tuple[Relation | None, bool, Renderer]:
        """The relation of a change's file as of its LSN, whether that is uncertain, and the
        renderer of that catalog."""
        if self.history is None:
            return self.catalog.relation(*raw.rel), False, self.renderer
        r, uncertain = self.history.relation_at(raw.rel, raw.lsn, raw.xid)
        return r, uncertain, self._renderer_at(raw.lsn, raw.xid, uncertain)

    def _renderer_at(self, lsn: Lsn, xid: int, fallback: bool) -> Renderer:
        assert self.history is not None
        snap = self.history.snapshot_at(lsn, xid)
        if fallback or snap.catalog is self.catalog:
            return self.renderer
        if snap.renderer is None:
            snap.renderer = Renderer(snap.catalog, self.toast, self.ctx)
        return snap.renderer  # type: ignore[no-any-return]

    def _add(self, raw: RawChange) -> None:
        if raw.op == "truncate":
            cat = self.catalog if self.history is None else \
                self.history.catalog_at(raw.lsn, raw.xid)
            for relid in raw.relids:
                r = cat.by_oid.get(relid)
                if r is None or not self._wanted(r):
                    continue
                ch = RowChange(raw.lsn, raw.xid, None, "truncate", r.schema, r.name, None, None,
                               True, relation=relstr(r.locator), writer_xid=raw.xid)
                if self.history is not None:
                    ch.schema_uncertain = self.history.is_uncertain(r)
                self._buffer(raw, ch)
            return
        if self.history is None and self.tables is not None and raw.rel not in self.tables:
            return
        resolved = None
        if self.history is not None:
            resolved = self._relation(raw)
            r = resolved[0]
            if r is None and raw.rel in \
                    self.history.snapshot_at(raw.lsn, raw.xid).catalog.by_locator:
                self.stats["rewrite_changes"] += 1  # the copy a table rewrite makes
                return
            if self.tables is not None and (r is None or not self._wanted(r)):
                return
            known = r is not None
        else:
            known = raw.rel in self.catalog.by_locator
        if not self.all_relations and not known:
            self.skipped_rels[relstr(raw.rel)] += 1
            self.stats["skipped_changes"] += 1
            return
        if raw.op == "super_delete":
            lst = self.pending.get(raw.xid, [])
            for i in range(len(lst) - 1, -1, -1):
                c = lst[i]
                if c.op == "insert" and c.relation == relstr(raw.rel) and \
                        c.tid == (raw.blk, raw.offnum):
                    del lst[i]
                    break
            return
        ch = self.decode(raw, resolved)
        ch.tid = (raw.blk, raw.offnum)
        self._buffer(raw, ch)

    def _buffer(self, raw: RawChange, ch: RowChange) -> None:
        if raw.toplevel_xid:
            self.top_of[raw.xid] = raw.toplevel_xid
        self.pending.setdefault(raw.xid, []).append(ch)
        self.stats["changes"] += 1

    # -- decoding ---------------------------------------------------------------------------------
    def decode(self, raw: RawChange,
               resolved: tuple[Relation | None, bool, Renderer] | None = None) -> RowChange:
        r, uncertain, renderer = resolved or self._relation(raw)
        ch = RowChange(raw.lsn, raw.xid, None, raw.op, None, None, None, None, True,
                       relation=relstr(raw.rel), writer_xid=raw.xid, hot=raw.hot,
                       schema_uncertain=uncertain)
        if raw.new_missing:
            ch.notes.append(raw.new_missing)
        if r is None:
            ch.notes.append(f"relation {relstr(raw.rel)} is not in the catalog: raw tuples")
            ch.raw = {"old": bytea_out(raw.old) if raw.old is not None else None,
                      "new": bytea_out(raw.new) if raw.new is not None else None}
            ch.old_complete = raw.old is not None or raw.op == "insert"
            ch.new_complete = raw.new is not None or raw.op == "delete"
            return ch
        ch.schema, ch.table, ch.key = r.schema, r.name, list(r.key)
        old_d = new_d = None
        if raw.op in ("update", "delete"):
            if raw.old is None:
                ch.old = {}
                ch.old_complete = False
                ch.notes.append("old row not in the WAL read (no page image of its block "
                                "since the start)")
            else:
                ch.old, ch.old_complete, old_d = self._values(
                    raw.old, r, ch.notes, "old", raw.old_key_only, None, raw.lsn,
                    ch.raw_columns.setdefault("old", set()), renderer)
                if raw.old_key_only:
                    ch.old_complete = False
                    ch.notes.append("old row known only by its replica identity key")
        if raw.op in ("insert", "update"):
            if raw.new is None:
                ch.new = {}
                ch.new_complete = False
            else:
                ch.new, ch.new_complete, new_d = self._values(
                    raw.new, r, ch.notes, "new", False, raw.new_unknown, raw.lsn,
                    ch.raw_columns.setdefault("new", set()), renderer)
        if old_d is not None and new_d is not None and not raw.old_key_only:
            ch.same = {c.name for c, a, b in zip(r.columns, old_d, new_d)
                       if not c.dropped and a == b and b is not UNKNOWN}
        return ch

    def _values(self, tup: bytes, r: Relation, notes: list[str], which: str, key_only: bool,
                unknown: list[tuple[int, int]] | None = None, lsn: Lsn | None = None,
                raw_columns: set[str] | None = None, renderer: Renderer | None = None
                ) -> tuple[dict[str, str | None], bool, list[Any] | None]:
        renderer = renderer or self.renderer
        texts = None
        plan, cplan = self._plan(r, key_only)
        if cplan is not None and not unknown and _C_DEFORM is not None:
            res = _C_DEFORM(tup, cplan, MISSING)
            if res is not None:
                datums, texts = res
        if texts is None:
            try:
                datums = deform(tup, r.columns, self.catalog.major, unknown)
            except (TupleError, IndexError, ValueError) as exc:
                notes.append(f"{which} tuple is corrupt: {exc}")
                return {}, False, None
        out: dict[str, str | None] = {}
        complete = True
        scalar_get = self.renderer._scalar.get  # type oid -> output function, from render()
        ctx = self.renderer.ctx
        for i, name, type_oid, col in plan:
            v = datums[i]
            if v is None:
                out[name] = None
                continue
            if texts is not None:
                t = texts[i]
                if t is not None:  # rendered by _deform.c
                    out[name] = t
                    continue
            if type(v) is bytes:  # the common case: a plain value of a type seen before
                fn = scalar_get(type_oid)
                if fn is not None:
                    try:
                        out[name] = fn(v, ctx)
                        continue
                    except Exception:  # noqa: BLE001 - render() below says what it is
                        pass
            if v is MISSING:
                out[col.name] = col.missing
                continue
            if v is UNKNOWN:
                complete = False
                continue
            try:
                out[col.name] = renderer.render(v, col.type_oid, col.type_name,
                                                col.element_type_oid)
            except Unresolved as exc:
                complete = False
                notes.append(f"{which}.{col.name}: {exc}")
            except Undecodable as exc:
                out[col.name] = exc.text
                if raw_columns is not None:
                    raw_columns.add(col.name)
                notes.append(f"{which}.{col.name} ({col.type_name}) at {lsn}: {exc.why} "
                             f"(shown as raw bytes)")
            except Exception as exc:  # noqa: BLE001 - a bug must not stop the run either
                complete = False
                notes.append(f"{which}.{col.name} ({col.type_name}) at {lsn}: internal error "
                             f"{type(exc).__name__}: {exc}")
                self._internal_error(lsn, exc)
        return out, complete, datums

    def _plan(self, r: Relation, key_only: bool
              ) -> tuple[list[tuple[int, str, int, Any]], tuple[Any, ...] | None]:
        """The columns _values renders, as (position, name, type oid, column): the dropped
        ones left out, and with key_only those not in the key; and the C deformer's plan of
        all the columns (None without it); made once per relation."""
        entry = self._plans.get(id(r))
        # (a catalog being built may still grow)
        if entry is None or entry[0] is not r or entry[1] is not r.key or \
                entry[2] != len(r.columns) or entry[5] is not r.columns:
            keys = set(r.key)
            every = [(i, c.name, c.type_oid, c) for i, c in enumerate(r.columns)
                     if not c.dropped]
            cplan = c_plan(r.columns, self._utf8, self._utc) if _C_DEFORM is not None else None
            entry = (r, r.key, len(r.columns), (every, cplan),
                     ([e for e in every if e[1] in keys], cplan), r.columns)
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[id(r)] = entry
        plan: tuple[list[tuple[int, str, int, Any]], tuple[Any, ...] | None] = (
            entry[4] if key_only else entry[3])
        return plan

    def _internal_error(self, lsn: Lsn | None, exc: BaseException) -> None:
        """A decoder raised what it never should (a bug): one warning per kind, the run goes
        on. The fuzz tests fail on any such warning."""
        text = f"internal error decoding the record at {lsn}: {type(exc).__name__}: {exc}"
        if not any(w.startswith("internal error decoding") and type(exc).__name__ in w
                   for w in self.warnings):
            self.warnings.append(text)

    # -- transactions -----------------------------------------------------------------------------
    def _xact(self, rec: Record) -> Iterator[RowChange]:
        try:
            ended = self.xacts.feed(rec)
        except RecordDataError as exc:
            self._bad_record(exc)
            return
        if ended is None:
            return
        end, top, status = ended.end, ended.top, ended.status
        if ended.subxact:
            # a subtransaction rolled back: its changes are aborted, its parent goes on
            changes = self._take([end.xid, *end.subxacts])
            self._finish_changes(changes, top, status, end)
            if self.include == "all":
                yield from self._filter(changes)
            return
        members = [top, *end.subxacts]
        members += [x for x, tp in self.top_of.items() if tp == top and x not in members]
        changes = self._take(members)
        self._finish_changes(changes, top, status, end)
        if status == "committed" or self.include == "all":
            yield from self._filter(changes)

    def _take(self, xids: list[int]) -> list[RowChange]:
        out: list[RowChange] = []
        for x in xids:
            out.extend(self.pending.pop(x, ()))
        out.sort(key=lambda c: c.lsn)
        return out

    def _finish_changes(self, changes: list[RowChange], top: int, status: str,
                        end: XactEnd | None) -> None:
        for c in changes:
            c.xid = top
            c.subxid = c.writer_xid if c.writer_xid != top else None
            c.status = status
            if end is not None:
                c.commit_lsn = end.lsn
                c.commit_time = end.time

    def _filter(self, changes: list[RowChange]) -> Iterator[RowChange]:
        for c in changes:
            if self.xids and c.xid not in self.xids and c.writer_xid not in self.xids:
                continue
            if self.commit_from is not None and c.commit_lsn is not None \
                    and c.commit_lsn < self.commit_from:
                continue
            self.stats["emitted"] += 1
            yield c

    def _finish(self) -> Iterator[RowChange]:
        # still open at the end of the WAL read
        groups: dict[int, list[RowChange]] = {}
        for x, lst in self.pending.items():
            groups.setdefault(self.xacts.in_progress(x), []).extend(lst)
        self.pending.clear()
        if self.include == "all":
            for top in sorted(groups, key=lambda t: min(c.lsn for c in groups[t])):
                changes = sorted(groups[top], key=lambda c: c.lsn)
                self._finish_changes(changes, top, "in_progress", None)
                yield from self._filter(changes)
        self._final_warnings()

    def _final_warnings(self) -> None:
        if not self.all_relations and (self.skipped_rels or self.stats["skipped_system_records"]):
            rels = ", ".join(f"{r} ({n})" for r, n in self.skipped_rels.most_common(5))
            more = ", ..." if len(self.skipped_rels) > 5 else ""
            parts = []
            if self.skipped_rels:
                parts.append(f"{self.stats['skipped_changes']} change(s) to "
                             f"{len(self.skipped_rels)} relation(s) the catalog does not have: "
                             f"{rels}{more}")
            if self.stats["skipped_system_records"]:
                parts.append(f"{self.stats['skipped_system_records']} heap record(s) of system "
                             "catalogs")
            self.warnings.append(f"skipped {' and '.join(parts)}; --all-relations lists them "
                                 "with raw tuples")
        if self.unknown_rels and self.all_relations:
            rels = ", ".join(f"{relstr(r)} ({n} records)"
                             for r, n in self.unknown_rels.most_common(10))
            self.warnings.append(f"{len(self.unknown_rels)} relation(s) of database "
                                 f"{self.catalog.database_oid} are not in the catalog; their "
                                 f"rows are listed with raw tuples: {rels}")
        if self.unknown_rels and not self.known_rels_seen:
            self.warnings.append("no relfilenode of the catalog appears in the WAL read: "
                                     "is the catalog from this cluster and this database?")
        if self.other_db:
            dbs = ", ".join(f"{db} ({n} records)" for db, n in sorted(self.other_db.items()))
            self.warnings.append(f"records of other databases were skipped: {dbs}")

    @property
    def end_of_wal(self) -> Any:
        return self.reader.end_of_wal


__all__ = ["Replay"]
