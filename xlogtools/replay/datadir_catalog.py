"""The catalog snapshot (DESIGN.md 4.3) of one database, read from the files of a data
directory with no server: the same document `capture()` builds from its queries, field for
field (see docs/catalog.md for what differs: the minor version, the capture-time fields).

Bootstrap order, as the server's own: global/pg_filenode.map -> pg_database -> the database's
pg_filenode.map -> pg_class, pg_attribute, pg_type (mapped) -> pg_namespace, pg_index, pg_enum
(found in pg_class) and pg_tablespace (shared, mapped).
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import struct
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, UsageError
from ..lsn import Lsn
from . import syscat
from .catalog import FIRST_NORMAL_OBJECT_ID, Catalog, Column, Relation, TypeInfo
from .pgdata import GLOBALTABLESPACE_OID, DataDir

# fixed oids of the catalogs read (catalog/pg_*.h CATALOG(...) lines)
DATABASE_RELID, TABLESPACE_RELID = 1262, 1213
CLASS_RELID, ATTRIBUTE_RELID, TYPE_RELID = 1259, 1249, 1247
NAMESPACE_RELID, INDEX_RELID, ENUM_RELID = 2615, 2610, 3501
_HAS_STORAGE = frozenset("ritSm")  # RELKIND_HAS_STORAGE

# pg_enc2name_tbl of common/encnames.c, by encoding id
ENCODINGS = ("SQL_ASCII EUC_JP EUC_CN EUC_KR EUC_TW EUC_JIS_2004 UTF8 MULE_INTERNAL LATIN1 "
             "LATIN2 LATIN3 LATIN4 LATIN5 LATIN6 LATIN7 LATIN8 LATIN9 LATIN10 WIN1256 WIN1258 "
             "WIN866 WIN874 KOI8R WIN1251 WIN1252 ISO_8859_5 ISO_8859_6 ISO_8859_7 ISO_8859_8 "
             "WIN1250 WIN1253 WIN1254 WIN1255 WIN1257 KOI8U SJIS BIG5 GBK UHC GB18030 JOHAB "
             "SHIFT_JIS_2004").split()


def databases(dd: DataDir) -> list[dict[str, Any]]:
    """The committed rows of pg_database."""
    gmap = dd.relmap(GLOBALTABLESPACE_OID, 0)
    if DATABASE_RELID not in gmap:
        raise InputError("global/pg_filenode.map has no entry for pg_database",
                         file=str(dd.path / "global" / "pg_filenode.map"))
    return _rows(dd, GLOBALTABLESPACE_OID, 0, gmap[DATABASE_RELID], "pg_database")


def _rows(dd: DataDir, spc: int, db: int, filenode: int, cat: str) -> list[dict[str, Any]]:
    path = dd.db_dir(spc, db) / str(filenode)
    return list(syscat.rows(dd.tuples(spc, db, filenode, cat), dd.major, cat, path))


def pick_database(rows: list[dict[str, Any]], dbname: str | None) -> dict[str, Any]:
    """The database to describe: `dbname`, else the one database users made (neither a
    template nor `postgres`), else `postgres`; several user databases need a choice."""
    if dbname is not None:
        for r in rows:
            if r["datname"] == dbname:
                return r
        raise InputError(f"database {dbname!r} is not in pg_database (it has: "
                         f"{', '.join(sorted(r['datname'] for r in rows))})")
    user = [r for r in rows if not r["datistemplate"] and r["datname"] != "postgres"]
    if len(user) == 1:
        return user[0]
    if not user:
        for r in rows:
            if r["datname"] == "postgres":
                return r
        raise InputError("pg_database has neither a user database nor 'postgres': "
                         "name one with --dbname")
    raise UsageError(f"the data directory holds several databases "
                     f"({', '.join(sorted(r['datname'] for r in user))}): "
                     f"a catalog snapshot describes one, pick it with --dbname")


def server_settings(dd: DataDir) -> dict[str, str]:
    """Settings of postgresql.conf, its include files and postgresql.auto.conf (last wins)."""
    out: dict[str, str] = {}

    def read(path: str, depth: int) -> None:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.readlines()
        except OSError:
            return
        for line in lines:
            m = re.match(r"\s*([A-Za-z_][\w.]*)\s*=?\s*('(?:[^']|'')*'|[^#\s]+)", line)
            if not m:
                continue
            key, value = m.group(1).lower(), m.group(2)
            if value.startswith("'"):
                value = value[1:-1].replace("''", "'")
            if key in ("include", "include_if_exists") and depth < 5:
                read(os.path.join(os.path.dirname(path), value), depth + 1)
            else:
                out[key] = value

    read(str(dd.path / "postgresql.conf"), 0)
    read(str(dd.path / "postgresql.auto.conf"), 0)
    return out


@dataclass
class CatalogRows:
    """The rows of one database's catalogs that a snapshot is made of (dicts of syscat.rows),
    with the relation maps that name the files of the mapped ones. From a data directory's
    files (read_rows) or, as of an LSN, from the WAL (schema_history)."""

    database: dict[str, Any]  # its pg_database row
    gmap: dict[int, int]
    lmap: dict[int, int]
    classes: list[dict[str, Any]]
    attributes: list[dict[str, Any]]
    types: list[dict[str, Any]]
    namespaces: list[dict[str, Any]]
    indexes: list[dict[str, Any]]
    enums: list[dict[str, Any]]


def catalog_filenodes(dd: DataDir, dbname: str | None = None
                      ) -> tuple[dict[str, Any], dict[int, int], dict[int, int], dict[str, int]]:
    """(pg_database row, global map, database map, {catalog name: relfilenode}) of the
    catalogs a snapshot reads: pg_class, pg_attribute, pg_type (mapped), pg_namespace,
    pg_index, pg_enum (named by pg_class)."""
    gmap = dd.relmap(GLOBALTABLESPACE_OID, 0)
    drow = pick_database(databases(dd), dbname)
    dboid, dbspc = drow["oid"], drow["dattablespace"]
    spcs = {r["oid"] for r in _rows(dd, GLOBALTABLESPACE_OID, 0,
                                     _mapped(gmap, TABLESPACE_RELID, dd, "global"),
                                     "pg_tablespace")}
    if dbspc not in spcs:
        raise InputError(f"database {drow['datname']} is in tablespace {dbspc}, which "
                         f"pg_tablespace does not have")
    lmap = dd.relmap(dbspc, dboid)
    where = str(dd.db_dir(dbspc, dboid))
    nodes = {"pg_class": _mapped(lmap, CLASS_RELID, dd, where),
             "pg_attribute": _mapped(lmap, ATTRIBUTE_RELID, dd, where),
             "pg_type": _mapped(lmap, TYPE_RELID, dd, where)}
    classes = {r["oid"]: r for r in _rows(dd, dbspc, dboid, nodes["pg_class"], "pg_class")}
    for oid, cat in ((NAMESPACE_RELID, "pg_namespace"), (INDEX_RELID, "pg_index"),
                     (ENUM_RELID, "pg_enum")):
        c = classes.get(oid)
        node = (c["relfilenode"] or lmap.get(oid)) if c else None
        if not node:
            raise InputError(f"pg_class of database {drow['datname']} has no row for {cat}",
                             file=where)
        nodes[cat] = int(node)
    return drow, gmap, lmap, nodes


def read_rows(dd: DataDir, dbname: str | None = None) -> CatalogRows:
    """The committed catalog rows of a database as its files show them."""
    drow, gmap, lmap, nodes = catalog_filenodes(dd, dbname)
    dboid, dbspc = drow["oid"], drow["dattablespace"]

    def local(cat: str) -> list[dict[str, Any]]:
        return _rows(dd, dbspc, dboid, nodes[cat], cat)

    return CatalogRows(drow, gmap, lmap, local("pg_class"), local("pg_attribute"),
                       local("pg_type"), local("pg_namespace"), local("pg_index"),
                       local("pg_enum"))


def build(dd: DataDir, dbname: str | None = None) -> Catalog:
    return assemble(dd, read_rows(dd, dbname))


def assemble(dd: DataDir, rows: CatalogRows, settings: dict[str, str] | None = None) -> Catalog:
    """The snapshot from catalog rows (capture's queries, done on the rows); `settings`:
    server_settings(dd), read again when not given."""
    major = dd.major
    drow, gmap, lmap = rows.database, rows.gmap, rows.lmap
    dboid, dbspc = drow["oid"], drow["dattablespace"]
    class_rows = rows.classes
    classes = {r["oid"]: r for r in class_rows}
    if len(classes) != len(class_rows):  # two live versions of a row: visibility went wrong
        dd.problems.append(f"pg_class of database {drow['datname']} has "
                           f"{len(class_rows) - len(classes)} row(s) visible twice; the last "
                           f"one (in file order) is used")

    def filenode(c: dict[str, Any]) -> int | None:  # pg_relation_filenode()
        if c["relkind"] not in _HAS_STORAGE:
            return None
        if c["relfilenode"]:
            return int(c["relfilenode"])
        return (gmap if c["relisshared"] else lmap).get(c["oid"])

    attrs = rows.attributes
    type_rows = {r["oid"]: r for r in rows.types}
    nsp = {r["oid"]: r["nspname"] for r in rows.namespaces}
    index_rows = rows.indexes
    enum_rows = rows.enums

    def spc_of(c: dict[str, Any]) -> int:
        return int(c["reltablespace"]) or dbspc

    # relations (capture's _RELATIONS), ordered by schema and name as the server sorts names
    rels: dict[int, Relation] = {}
    for c in sorted(classes.values(), key=lambda c: (_b(nsp.get(c["relnamespace"], "")),
                                                      _b(c["relname"]))):
        schema = nsp.get(c["relnamespace"], "")
        if c["relkind"] not in ("r", "m") or c["oid"] < FIRST_NORMAL_OBJECT_ID or \
                schema == "pg_toast" or filenode(c) is None:
            continue
        toast = classes.get(c["reltoastrelid"]) if c["reltoastrelid"] else None
        toast_node = filenode(toast) if toast else None
        rels[c["oid"]] = Relation(
            oid=c["oid"], relfilenode=filenode(c) or 0, tablespace_oid=spc_of(c),
            database_oid=dboid, schema=schema, name=c["relname"], kind=c["relkind"],
            replica_identity=c["relreplident"], toast_relfilenode=toast_node or None, key=[],
            columns=[], toast_oid=c["reltoastrelid"] or None)

    # columns (_COLUMNS)
    type_oids: set[int] = set()
    by_rel: dict[int, list[dict[str, Any]]] = {}
    for a in attrs:
        if a["attnum"] > 0 and a["attrelid"] in rels:
            by_rel.setdefault(a["attrelid"], []).append(a)
    missing_rows: list[tuple[Column, bytes]] = []
    for oid, r in rels.items():
        for a in sorted(by_rel.get(oid, []), key=lambda a: a["attnum"]):
            typid = a["atttypid"]
            t = type_rows.get(typid)
            col = Column(
                attnum=a["attnum"], name=a["attname"], dropped=a["attisdropped"],
                not_null=a["attnotnull"], type_oid=typid, type_name=t["typname"] if t else "",
                typmod=a["atttypmod"], attlen=a["attlen"], attbyval=a["attbyval"],
                attalign=a["attalign"], attstorage=a["attstorage"],
                attcompression=a.get("attcompression", "") if major >= 14 else "",
                type_sql=syscat.format_type(type_rows, nsp, typid, a["atttypmod"], major)
                if typid else "",
                generated=a["attgenerated"], identity=a["attidentity"], missing=None)
            if a["atthasmissing"] and isinstance(a["attmissingval"], bytes):
                missing_rows.append((col, a["attmissingval"]))
            r.columns.append(col)
            if typid:
                type_oids.add(typid)

    # keys (_KEYS): the replica identity index, else the primary key; every indkey column
    names = {(a["attrelid"], a["attnum"]): a["attname"] for a in attrs if a["attrelid"] in rels}
    for oid, r in rels.items():
        pk: list[str] = []
        ri: list[str] = []
        for i in index_rows:
            if i["indrelid"] != oid or not (i["indisprimary"] or i["indisreplident"]):
                continue
            cols = [names[(oid, n)] for n in syscat.int2vector(i["indkey"]) if (oid, n) in names]
            if i["indisreplident"]:
                ri += cols
            if i["indisprimary"]:
                pk += cols
        r.key = ri or pk

    # indexes of the table and of its TOAST table (_INDEXES), by name
    for oid, r in rels.items():
        found = []
        for i in index_rows:
            if i["indrelid"] == oid or (r.toast_oid and i["indrelid"] == r.toast_oid):
                ic = classes.get(i["indexrelid"])
                node = filenode(ic) if ic else None
                if ic is not None and node is not None:
                    found.append({"name": ic["relname"], "relfilenode": node,
                                  "tablespace_oid": spc_of(ic)})
        r.indexes = sorted(found, key=lambda ix: _b(ix["name"]))

    # types (_TYPES): the columns' types, their element and base types, recursively
    todo, seen = list(type_oids), set()
    while todo:
        o = todo.pop()
        if o in seen or o not in type_rows:
            continue
        seen.add(o)
        t = type_rows[o]
        todo += [x for x in (t["typelem"], t["typbasetype"]) if x]
    labels: dict[int, list[tuple[float, str, int]]] = {}
    for e in enum_rows:
        labels.setdefault(e["enumtypid"], []).append((e["enumsortorder"], e["enumlabel"],
                                                      e["oid"]))
    types: dict[int, TypeInfo] = {}
    for o in seen:
        t = type_rows[o]
        ordered = sorted(labels.get(o, []))
        types[o] = TypeInfo(name=t["typname"], kind=t["typtype"], length=t["typlen"],
                            byval=t["typbyval"], align=t["typalign"],
                            element_type_oid=t["typelem"] or None,
                            base_type_oid=t["typbasetype"] or None,
                            enum_labels=[x[1] for x in ordered],
                            enum_oids=[x[2] for x in ordered], category=t["typcategory"])
    for r in rels.values():
        for col in r.columns:
            ti = types.get(col.type_oid)
            if ti is not None and ti.element_type_oid and ti.length == -1:
                col.element_type_oid = ti.element_type_oid

    system = sorted(n for c in classes.values() if c["oid"] < FIRST_NORMAL_OBJECT_ID and
                    c["relkind"] in ("r", "t", "m") and (n := filenode(c)) is not None)
    covered: set[tuple[int, int | None]] = {(r.tablespace_oid, r.relfilenode)
                                            for r in rels.values()}
    covered |= {(r.tablespace_oid, r.toast_relfilenode) for r in rels.values()}
    covered |= {(ix["tablespace_oid"], ix["relfilenode"]) for r in rels.values()
                for ix in r.indexes}
    others = []
    for c in sorted(classes.values(), key=lambda c: (filenode(c) or 0, c["reltablespace"],
                                                      _b(nsp.get(c["relnamespace"], "")),
                                                      _b(c["relname"]))):
        node = filenode(c)
        schema = nsp.get(c["relnamespace"], "")
        if node is None or schema == "pg_toast" or (spc_of(c), node) in covered:
            continue
        others.append({"relfilenode": node, "tablespace_oid": spc_of(c),
                       "database_oid": 0 if c["relisshared"] else dboid,
                       "name": f"{schema}.{c['relname']}", "kind": c["relkind"]})

    if settings is None:
        settings = server_settings(dd)
    enc = drow["encoding"]
    stamp = _dt.datetime.fromtimestamp(dd.control.time, _dt.timezone.utc)
    cat = Catalog(
        system_identifier=str(dd.control.system_identifier),
        server_version_num=major * 10000, block_size=dd.control.block_size,
        wal_segment_size=dd.control.wal_segment_size,
        encoding=ENCODINGS[enc] if 0 <= enc < len(ENCODINGS) else str(enc),
        database=drow["datname"], database_oid=dboid, default_tablespace_oid=dbspc,
        relations=list(rels.values()), types=types, system_relfilenodes=system,
        other_relations=others, lc_monetary=settings.get("lc_monetary", "C"),
        captured_at=stamp.strftime("%Y-%m-%d %H:%M:%S+00"),
        captured_lsn=str(Lsn(dd.control.checkpoint)))
    for col, body in missing_rows:
        col.missing = _array_to_string(cat, body, settings.get("timezone", "GMT"))
    return cat


def _b(s: str) -> bytes:
    return s.encode("utf-8")  # names sort as bytes (the C collation of type name)


def _mapped(relmap: dict[int, int], relid: int, dd: DataDir, where: str) -> int:
    if relid not in relmap:
        raise InputError(f"the relation map in {where} has no entry for relation {relid}",
                         file=f"{where}/pg_filenode.map")
    return relmap[relid]


def _array_to_string(cat: Catalog, body: bytes, tz: str) -> str:
    """array_to_string(attmissingval, ''): the elements' text, NULLs left out."""
    from .tuples import Renderer, align_to, detoast, read_varlena
    from .types import OutputContext

    try:
        ctx = OutputContext(tz, cat.encoding, cat.major)
    except Exception:  # an unknown zone name: the value prints in UTC
        ctx = OutputContext("UTC", cat.encoding, cat.major)
    rend = Renderer(cat, None, ctx)
    ndim, dataoffset, elem = struct.unpack_from("<iiI", body, 0)
    if ndim == 0:
        return ""
    dims = struct.unpack_from(f"<{ndim}i", body, 12)
    nitems = 1
    for d in dims:
        nitems *= d
    hdr = 12 + 8 * ndim
    bitmap = body[hdr:hdr + (nitems + 7) // 8] if dataoffset else None
    pos = dataoffset - 4 if dataoffset else ((hdr + 4 + 7) & ~7) - 4
    t = cat.types.get(elem)
    elen, ealign = (t.length, t.align) if t else (-1, "i")
    out = []
    for i in range(nitems):
        if bitmap is not None and not (bitmap[i >> 3] >> (i & 7)) & 1:
            continue
        if elen == -1:
            pos = align_to(pos + 4, ealign) - 4
            v, size = read_varlena(body, pos, cat.major)
            val = detoast(v, None)
        elif elen == -2:
            size = body.index(b"\0", pos) - pos + 1
            val = body[pos:pos + size - 1]
        else:
            pos = align_to(pos + 4, ealign) - 4
            size, val = elen, body[pos:pos + elen]
        out.append(rend.output(val, elem, t.name if t else str(elem)))
        pos += size
    return "".join(out)


def catalog_from_datadir(path: str | os.PathLike[str], dbname: str | None = None,
                         problems: list[str] | None = None) -> "Catalog":
    """The catalog snapshot of database `dbname` (see datadir_catalog.pick_database for the
    default) read from the files of a data directory; what had to be skipped or guessed
    (pages failing their checksum, statuses missing from pg_xact) is appended to `problems`."""
    dd = DataDir(path)
    try:
        return build(dd, dbname)
    finally:
        if problems is not None:
            problems.extend(dict.fromkeys(dd.problems))
