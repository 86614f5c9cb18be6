"""Catalog snapshot: what replay needs to turn heap tuples into rows (DESIGN.md 4.3).

`capture(conninfo)` reads it from a live server with psycopg 3; `Catalog.load`/`save` keep it
as JSON ("xlogtools-catalog/1"). Relations are found by (tablespace, database, relfilenode), the
triple heap records name; dropped columns keep attlen/attalign because old tuples still hold
their bytes.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InputError, XlogError

FORMAT = "xlogtools-catalog/1"
FIRST_NORMAL_OBJECT_ID = 16384


@dataclass
class Column:
    attnum: int
    name: str
    dropped: bool
    not_null: bool
    type_oid: int
    type_name: str
    typmod: int
    attlen: int
    attbyval: bool
    attalign: str
    attstorage: str
    element_type_oid: int | None = None
    attcompression: str = ""
    type_sql: str = ""  # format_type(atttypid, atttypmod), for SQL casts
    generated: str = ""  # attgenerated: '' or 's' (stored; 18 adds 'v')
    identity: str = ""  # attidentity: '', 'a' (always) or 'd' (by default)
    missing: str | None = None  # attmissingval's text for columns added with a default

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Column":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Relation:
    oid: int
    relfilenode: int
    tablespace_oid: int
    database_oid: int
    schema: str
    name: str
    kind: str
    replica_identity: str
    toast_relfilenode: int | None
    key: list[str]
    columns: list[Column]
    toast_oid: int | None = None
    # the table's indexes and its TOAST table's index: [{name, relfilenode, tablespace_oid}],
    # so that their records are named as the table they belong to
    indexes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def locator(self) -> tuple[int, int, int]:
        return (self.tablespace_oid, self.database_oid, self.relfilenode)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Relation":
        names = cls.__dataclass_fields__
        kw = {k: v for k, v in d.items() if k in names and k != "columns"}
        kw.setdefault("toast_relfilenode", None)
        kw.setdefault("key", [])
        return cls(columns=[Column.from_json(c) for c in d.get("columns", [])], **kw)


@dataclass
class TypeInfo:
    name: str
    kind: str  # typtype: b base, e enum, d domain, c composite, r range, m multirange, p pseudo
    length: int = -1
    byval: bool = False
    align: str = "i"
    element_type_oid: int | None = None  # for arrays
    base_type_oid: int | None = None  # for domains
    enum_labels: list[str] = field(default_factory=list)
    enum_oids: list[int] = field(default_factory=list)
    category: str = ""

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TypeInfo":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Catalog:
    system_identifier: str
    server_version_num: int
    block_size: int
    wal_segment_size: int
    encoding: str
    database: str
    database_oid: int
    default_tablespace_oid: int
    relations: list[Relation]
    types: dict[int, TypeInfo]
    system_relfilenodes: list[int] = field(default_factory=list)
    # names of the other relation files (system catalogs, sequences, their indexes):
    # [{relfilenode, tablespace_oid, database_oid (0: shared), name (schema.name), kind}]
    other_relations: list[dict[str, Any]] = field(default_factory=list)
    lc_monetary: str = "C"
    captured_at: str = ""
    captured_lsn: str = ""

    def __post_init__(self) -> None:
        self.by_locator: dict[tuple[int, int, int], Relation] = {}
        self.by_toast: dict[tuple[int, int, int], Relation] = {}
        self.by_oid: dict[int, Relation] = {}
        for r in self.relations:
            self.by_locator[r.locator] = r
            self.by_oid[r.oid] = r
            if r.toast_relfilenode:
                self.by_toast[(r.tablespace_oid, r.database_oid, r.toast_relfilenode)] = r
        # every relation file that belongs to a table of the catalog (the table, its TOAST
        # table, their indexes) -> the table
        self.owner: dict[tuple[int, int, int], Relation] = dict(self.by_toast)
        for r in self.relations:
            for ix in r.indexes:
                self.owner[(int(ix["tablespace_oid"]), r.database_oid, int(ix["relfilenode"]))] = r
        self.owner.update(self.by_locator)
        self.other_names = {(int(o["tablespace_oid"]), int(o["database_oid"]),
                             int(o["relfilenode"])): str(o["name"]) for o in self.other_relations}
        self.system = set(self.system_relfilenodes)
        self.enum_label: dict[int, str] = {}
        for t in self.types.values():
            for oid, label in zip(t.enum_oids, t.enum_labels):
                self.enum_label[oid] = label

    @property
    def major(self) -> int:
        return self.server_version_num // 10000

    def relation(self, spc: int, db: int, rel: int) -> Relation | None:
        return self.by_locator.get((spc, db, rel))

    def table_of(self, spc: int, db: int, rel: int) -> Relation | None:
        """The table a relation file belongs to: itself, or the table of a TOAST table or
        of an index (None when the catalog does not know the file)."""
        return self.owner.get((spc, db, rel))

    def relation_name(self, spc: int, db: int, rel: int) -> str | None:
        """schema.name of any relation file the catalog knows: a table, its TOAST table or
        an index as the table's name; a system catalog, sequence or other index by its own."""
        t = self.owner.get((spc, db, rel))
        return t.qualified if t is not None else self.other_names.get((spc, db, rel))

    def file_names(self) -> dict[tuple[int, int, int], str]:
        """(tablespace, database, relfilenode) -> relation_name() of every file the catalog
        knows: a plain dict, for `dump`'s relation column (and its worker processes)."""
        names = dict(self.other_names)
        names.update({k: t.qualified for k, t in self.owner.items()})
        return names

    def find_table(self, name: str) -> list[Relation]:
        if "." in name:
            schema, _, table = name.partition(".")
            return [r for r in self.relations if r.schema == schema and r.name == table]
        return [r for r in self.relations if r.name == name]

    # -- JSON -------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"format": FORMAT}
        for k in ("system_identifier", "server_version_num", "block_size", "wal_segment_size",
                  "encoding", "database", "database_oid", "default_tablespace_oid",
                  "lc_monetary", "captured_at", "captured_lsn"):
            d[k] = getattr(self, k)
        d["relations"] = [asdict(r) for r in self.relations]
        d["types"] = {str(k): asdict(v) for k, v in sorted(self.types.items())}
        d["system_relfilenodes"] = sorted(self.system_relfilenodes)
        d["other_relations"] = self.other_relations
        return d

    def save(self, path: str | os.PathLike[str]) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, indent=1)
            fh.write("\n")

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Catalog":
        if d.get("format") != FORMAT:
            raise InputError(f"not an xlogtools catalog (format {d.get('format')!r}, "
                             f"expected {FORMAT!r})")
        try:
            return cls(
                system_identifier=str(d["system_identifier"]),
                server_version_num=int(d["server_version_num"]),
                block_size=int(d.get("block_size", 8192)),
                wal_segment_size=int(d.get("wal_segment_size", 16 << 20)),
                encoding=d.get("encoding", "UTF8"), database=d.get("database", ""),
                database_oid=int(d["database_oid"]),
                default_tablespace_oid=int(d.get("default_tablespace_oid", 1663)),
                relations=[Relation.from_json(r) for r in d.get("relations", [])],
                types={int(k): TypeInfo.from_json(v) for k, v in d.get("types", {}).items()},
                system_relfilenodes=[int(x) for x in d.get("system_relfilenodes", [])],
                other_relations=list(d.get("other_relations", [])),
                lc_monetary=d.get("lc_monetary", "C"), captured_at=d.get("captured_at", ""),
                captured_lsn=d.get("captured_lsn", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"catalog snapshot is incomplete or malformed: {exc!r}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Catalog":
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"catalog file {path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read catalog file {path}: {exc}") from None
        return cls.from_json(data)


# --- capture from a live server ----------------------------------------------------------------
_RELATIONS = """
SELECT c.oid, pg_relation_filenode(c.oid), c.reltablespace, n.nspname, c.relname, c.relkind,
       c.relreplident, c.reltoastrelid, CASE WHEN c.reltoastrelid <> 0
       THEN pg_relation_filenode(c.reltoastrelid) END, t.reltablespace
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'm') AND c.oid >= %s AND n.nspname <> 'pg_toast'
  AND pg_relation_filenode(c.oid) IS NOT NULL
ORDER BY n.nspname, c.relname
"""
_COLUMNS = """
SELECT a.attrelid, a.attnum, a.attname, a.attisdropped, a.attnotnull, a.atttypid,
       COALESCE(t.typname, ''), a.atttypmod, a.attlen, a.attbyval, a.attalign, a.attstorage,
       CASE WHEN a.atttypid <> 0 THEN format_type(a.atttypid, a.atttypmod) ELSE '' END,
       {compression}, a.attgenerated, a.attidentity,
       CASE WHEN a.atthasmissing THEN array_to_string(a.attmissingval, '') END
FROM pg_attribute a LEFT JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attnum > 0 AND a.attrelid = ANY(%s)
ORDER BY a.attrelid, a.attnum
"""
_KEYS = """
SELECT i.indrelid, a.attname, i.indisprimary, i.indisreplident
FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE (i.indisprimary OR i.indisreplident) AND i.indrelid = ANY(%s)
ORDER BY i.indrelid, k.n
"""
_INDEXES = """
SELECT i.indrelid, ic.relname, pg_relation_filenode(ic.oid), ic.reltablespace
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(%s) AND pg_relation_filenode(ic.oid) IS NOT NULL
UNION ALL
SELECT c.oid, ic.relname, pg_relation_filenode(ic.oid), ic.reltablespace
FROM pg_class c JOIN pg_index i ON i.indrelid = c.reltoastrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE c.oid = ANY(%s) AND pg_relation_filenode(ic.oid) IS NOT NULL
ORDER BY 1, 2
"""
_OTHERS = """
SELECT pg_relation_filenode(c.oid), c.reltablespace, c.relisshared, n.nspname, c.relname,
       c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE pg_relation_filenode(c.oid) IS NOT NULL AND n.nspname <> 'pg_toast'
ORDER BY 1, 2, 4, 5
"""
_TYPES = """
WITH RECURSIVE ts(oid) AS (
  SELECT unnest(%s::oid[])
  UNION SELECT v.x FROM pg_type t JOIN ts ON t.oid = ts.oid,
        LATERAL (VALUES (t.typelem), (t.typbasetype)) AS v(x) WHERE v.x <> 0
)
SELECT t.oid, t.typname, t.typtype, t.typlen, t.typbyval, t.typalign, t.typelem,
       t.typbasetype, t.typcategory,
       ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       ARRAY(SELECT e.oid FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
FROM pg_type t WHERE t.oid IN (SELECT oid FROM ts)
"""


def capture(conninfo: str) -> Catalog:
    """Read a catalog snapshot from the database `conninfo` connects to."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a declared dependency
        raise XlogError("the catalog command needs psycopg 3 (pip install 'psycopg[binary]')")
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise InputError(f"could not connect: {str(exc).strip()}") from None
    try:
        with conn:
            return _capture(conn)
    except psycopg.Error as exc:
        raise XlogError(f"catalog query failed: {str(exc).strip()}") from None


def _one(cur: Any, sql: str, *args: Any) -> Any:
    cur.execute(sql, args or None)
    return cur.fetchone()


def _capture(conn: Any) -> Catalog:
    cur = conn.cursor()
    cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    version = int(_one(cur, "SHOW server_version_num")[0])
    sysid = str(_one(cur, "SELECT system_identifier FROM pg_control_system()")[0])
    dbname, dboid, dbspc, enc = _one(
        cur, "SELECT d.datname, d.oid, d.dattablespace, pg_encoding_to_char(d.encoding) "
             "FROM pg_database d WHERE d.datname = current_database()")
    block_size = int(_one(cur, "SELECT current_setting('block_size')")[0])
    seg = _one(cur, "SELECT setting::bigint * CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 "
                    "WHEN 'MB' THEN 1048576 ELSE 1 END FROM pg_settings "
                    "WHERE name = 'wal_segment_size'")[0]
    lc_monetary = _one(cur, "SELECT current_setting('lc_monetary')")[0]
    now, lsn = _one(cur, "SELECT now()::text, CASE WHEN pg_is_in_recovery() THEN "
                         "pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text")
    cur.execute(_RELATIONS, (FIRST_NORMAL_OBJECT_ID,))
    rels: dict[int, Relation] = {}
    for (oid, filenode, spc, nsp, name, kind, ident, toast_oid, toast_node,
         toast_spc) in cur.fetchall():
        rels[oid] = Relation(oid=oid, relfilenode=int(filenode), tablespace_oid=spc or dbspc,
                             database_oid=dboid, schema=nsp, name=name, kind=kind,
                             replica_identity=ident,
                             toast_relfilenode=int(toast_node) if toast_node else None,
                             key=[], columns=[], toast_oid=toast_oid or None)
    oids = list(rels)
    compression = "a.attcompression::text" if version >= 140000 else "''"
    cur.execute(_COLUMNS.format(compression=compression), (oids,))
    type_oids: set[int] = set()
    for (relid, attnum, name, dropped, notnull, typid, typname, typmod, attlen, byval, align,
         storage, type_sql, comp, gen, ident, missing) in cur.fetchall():
        rels[relid].columns.append(Column(
            attnum=attnum, name=name, dropped=dropped, not_null=notnull, type_oid=typid,
            type_name=typname, typmod=typmod, attlen=attlen, attbyval=byval, attalign=align,
            attstorage=storage, attcompression=comp or "", type_sql=type_sql,
            generated=gen or "", identity=ident or "", missing=missing))
        if typid:
            type_oids.add(typid)
    cur.execute(_KEYS, (oids,))
    pk: dict[int, list[str]] = {}
    ri: dict[int, list[str]] = {}
    for relid, attname, primary, replident in cur.fetchall():
        if replident:
            ri.setdefault(relid, []).append(attname)
        if primary:
            pk.setdefault(relid, []).append(attname)
    for oid, r in rels.items():
        r.key = ri.get(oid) or pk.get(oid) or []
    cur.execute(_INDEXES, (oids, oids))
    for relid, name, filenode, spc in cur.fetchall():
        rels[relid].indexes.append({"name": name, "relfilenode": int(filenode),
                                    "tablespace_oid": spc or dbspc})
    cur.execute(_TYPES, (sorted(type_oids),))
    types: dict[int, TypeInfo] = {}
    for (oid, name, kind, length, byval, align, elem, base, category, labels,
         enum_oids) in cur.fetchall():
        types[oid] = TypeInfo(name=name, kind=kind, length=length, byval=byval, align=align,
                              element_type_oid=elem or None, base_type_oid=base or None,
                              enum_labels=list(labels), enum_oids=[int(x) for x in enum_oids],
                              category=category)
    for r in rels.values():
        for c in r.columns:
            t = types.get(c.type_oid)
            if t is not None and t.element_type_oid and t.length == -1:
                c.element_type_oid = t.element_type_oid
    cur.execute("SELECT pg_relation_filenode(c.oid) FROM pg_class c WHERE c.oid < %s "
                "AND c.relkind IN ('r', 't', 'm') AND pg_relation_filenode(c.oid) IS NOT NULL",
                (FIRST_NORMAL_OBJECT_ID,))
    system = sorted(int(x[0]) for x in cur.fetchall())
    covered: set[tuple[int, int | None]] = {(r.tablespace_oid, r.relfilenode)
                                            for r in rels.values()}
    covered |= {(r.tablespace_oid, r.toast_relfilenode) for r in rels.values()}
    covered |= {(ix["tablespace_oid"], ix["relfilenode"]) for r in rels.values() for ix in r.indexes}
    cur.execute(_OTHERS)
    others = [{"relfilenode": int(node), "tablespace_oid": spc or dbspc,
               "database_oid": 0 if shared else dboid, "name": f"{nsp}.{name}", "kind": kind}
              for node, spc, shared, nsp, name, kind in cur.fetchall()
              if (spc or dbspc, int(node)) not in covered]
    cur.execute("COMMIT")
    return Catalog(system_identifier=sysid, server_version_num=version, block_size=block_size,
                   wal_segment_size=int(seg), encoding=enc, database=dbname, database_oid=dboid,
                   default_tablespace_oid=dbspc, relations=list(rels.values()), types=types,
                   system_relfilenodes=system, other_relations=others,
                   lc_monetary=lc_monetary, captured_at=now,
                   captured_lsn=lsn)
