"""Rows of the system catalogs a catalog snapshot needs, as on disk: the column layouts of
catalog/pg_class.h, pg_attribute.h, pg_type.h, pg_namespace.h, pg_enum.h, pg_index.h,
pg_tablespace.h and pg_database.h for PostgreSQL 13-18, and format_type() of
utils/adt/format_type.c for the type names a snapshot stores.

Rows are deformed by the replay's own heap_deform_tuple (tuples.deform); a row is a dict of
column name -> Python value (bytes of variable-length columns, None for SQL NULL).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Iterator

from ..errors import InputError
from .catalog import Column
from .tuples import TupleError, deform

# (attlen, attalign) of the column types the catalogs use
_KINDS = {"oid": (4, "i"), "int4": (4, "i"), "float4": (4, "i"), "xid": (4, "i"),
          "int2": (2, "s"), "bool": (1, "c"), "char": (1, "c"), "name": (64, "c"),
          "text": (-1, "i"), "text[]": (-1, "i"), "node": (-1, "i"), "int2vector": (-1, "i"),
          "oidvector": (-1, "i"), "anyarray": (-1, "d")}


def _layout(major: int, cat: str) -> list[tuple[str, str]]:
    """Columns of a catalog in attnum order for one major (FormData_pg_* plus CATALOG_VARLEN)."""
    acl = "acl16" if major >= 16 else "acl"  # 16 made AclMode 64-bit: aclitem is 'd'-aligned
    if cat == "pg_class":
        cols = ["oid:oid", "relname:name", "relnamespace:oid", "reltype:oid", "reloftype:oid",
                "relowner:oid", "relam:oid", "relfilenode:oid", "reltablespace:oid",
                "relpages:int4", "reltuples:float4", "relallvisible:int4"]
        if major >= 18:
            cols.append("relallfrozen:int4")
        cols += ["reltoastrelid:oid", "relhasindex:bool", "relisshared:bool",
                 "relpersistence:char", "relkind:char", "relnatts:int2", "relchecks:int2",
                 "relhasrules:bool", "relhastriggers:bool", "relhassubclass:bool",
                 "relrowsecurity:bool", "relforcerowsecurity:bool", "relispopulated:bool",
                 "relreplident:char", "relispartition:bool", "relrewrite:oid",
                 "relfrozenxid:xid", "relminmxid:xid", f"relacl:{acl}", "reloptions:text[]",
                 "relpartbound:node"]
    elif cat == "pg_attribute":
        cols = ["attrelid:oid", "attname:name", "atttypid:oid"]
        if major <= 15:
            cols += ["attstattarget:int4", "attlen:int2", "attnum:int2", "attndims:int4",
                     "attcacheoff:int4", "atttypmod:int4"]
        else:
            cols += ["attlen:int2", "attnum:int2"]
            cols += ["attcacheoff:int4"] if major <= 17 else []
            cols += ["atttypmod:int4", "attndims:int2"]
        if major == 13:
            cols += ["attbyval:bool", "attstorage:char", "attalign:char"]
        else:  # 14 put attalign before attstorage, and added attcompression
            cols += ["attbyval:bool", "attalign:char", "attstorage:char", "attcompression:char"]
        cols += ["attnotnull:bool", "atthasdef:bool", "atthasmissing:bool", "attidentity:char",
                 "attgenerated:char", "attisdropped:bool", "attislocal:bool"]
        if major <= 15:
            cols += ["attinhcount:int4", "attcollation:oid"]
        elif major == 16:
            cols += ["attinhcount:int2", "attstattarget:int2", "attcollation:oid"]
        else:  # 17 made attstattarget nullable, among the variable-length columns
            cols += ["attinhcount:int2", "attcollation:oid", "attstattarget:int2"]
        cols += [f"attacl:{acl}", "attoptions:text[]", "attfdwoptions:text[]",
                 "attmissingval:anyarray"]
    elif cat == "pg_type":
        cols = ["oid:oid", "typname:name", "typnamespace:oid", "typowner:oid", "typlen:int2",
                "typbyval:bool", "typtype:char", "typcategory:char", "typispreferred:bool",
                "typisdefined:bool", "typdelim:char", "typrelid:oid"]
        cols += ["typsubscript:oid"] if major >= 14 else []
        cols += ["typelem:oid", "typarray:oid", "typinput:oid", "typoutput:oid",
                 "typreceive:oid", "typsend:oid", "typmodin:oid", "typmodout:oid",
                 "typanalyze:oid", "typalign:char", "typstorage:char", "typnotnull:bool",
                 "typbasetype:oid", "typtypmod:int4", "typndims:int4", "typcollation:oid",
                 "typdefaultbin:node", "typdefault:text", f"typacl:{acl}"]
    elif cat == "pg_namespace":
        cols = ["oid:oid", "nspname:name", "nspowner:oid", f"nspacl:{acl}"]
    elif cat == "pg_enum":
        cols = ["oid:oid", "enumtypid:oid", "enumsortorder:float4", "enumlabel:name"]
    elif cat == "pg_index":
        cols = ["indexrelid:oid", "indrelid:oid", "indnatts:int2", "indnkeyatts:int2",
                "indisunique:bool"]
        cols += ["indnullsnotdistinct:bool"] if major >= 15 else []
        cols += ["indisprimary:bool", "indisexclusion:bool", "indimmediate:bool",
                 "indisclustered:bool", "indisvalid:bool", "indcheckxmin:bool",
                 "indisready:bool", "indislive:bool", "indisreplident:bool",
                 "indkey:int2vector", "indcollation:oidvector", "indclass:oidvector",
                 "indoption:int2vector", "indexprs:node", "indpred:node"]
    elif cat == "pg_tablespace":
        cols = ["oid:oid", "spcname:name", "spcowner:oid", f"spcacl:{acl}",
                "spcoptions:text[]"]
    elif cat == "pg_database":
        cols = ["oid:oid", "datname:name", "datdba:oid", "encoding:int4"]
        if major <= 14:
            cols += ["datcollate:name", "datctype:name", "datistemplate:bool",
                     "datallowconn:bool", "datconnlimit:int4", "datlastsysoid:oid"]
        else:
            cols += ["datlocprovider:char", "datistemplate:bool", "datallowconn:bool"]
            cols += ["dathasloginevt:bool"] if major >= 17 else []
            cols += ["datconnlimit:int4"]
        cols += ["datfrozenxid:xid", "datminmxid:xid", "dattablespace:oid"]
        if major >= 15:
            cols += ["datcollate:text", "datctype:text", "daticulocale:text"]
            cols += ["daticurules:text"] if major >= 16 else []
            cols += ["datcollversion:text"]
        cols += [f"datacl:{acl}"]
    else:  # pragma: no cover - a programming error
        raise KeyError(cat)
    return [(c.split(":")[0], c.split(":")[1]) for c in cols]


def _columns(major: int, cat: str) -> list[Column]:
    out = []
    for i, (name, kind) in enumerate(_layout(major, cat)):
        attlen, align = ((-1, "d") if kind == "acl16" else (-1, "i") if kind == "acl"
                         else _KINDS[kind])
        out.append(Column(attnum=i + 1, name=f"{name}:{kind}", dropped=False, not_null=False,
                          type_oid=0, type_name=kind, typmod=-1, attlen=attlen,
                          attbyval=attlen > 0, attalign=align, attstorage="p"))
    return out


def _value(kind: str, v: Any) -> Any:
    if v is None or not isinstance(v, bytes):
        return v  # NULL; compressed or external values stay as they are (unused here)
    if kind in ("oid", "xid"):
        return struct.unpack("<I", v)[0]
    if kind == "int4":
        return struct.unpack("<i", v)[0]
    if kind == "int2":
        return struct.unpack("<h", v)[0]
    if kind == "float4":
        return struct.unpack("<f", v)[0]
    if kind == "bool":
        return v != b"\0"
    if kind == "char":
        return v.decode("latin-1").rstrip("\0")
    if kind == "name":
        return v.split(b"\0", 1)[0].decode("utf-8", "replace")
    return v


def rows(tuples: Iterator[bytes], major: int, cat: str, path: Path) -> Iterator[dict[str, Any]]:
    """The rows of one catalog from its visible tuples."""
    cols = _columns(major, cat)
    for tup in tuples:
        try:
            values = deform(tup, cols, major)
        except (TupleError, IndexError, ValueError, struct.error) as exc:
            raise InputError(f"{cat}: a row of {path} does not match the layout of "
                             f"PostgreSQL {major}: {exc}", file=str(path)) from None
        row = {}
        for col, v in zip(cols, values):
            name, _, kind = col.name.partition(":")
            row[name] = _value(kind, v)
        yield row


def int2vector(body: bytes | None) -> list[int]:
    """Elements of an int2vector (a one-dimensional int2 array without nulls)."""
    if not body:
        return []
    ndim, _dataoffset, _elemtype = struct.unpack_from("<iiI", body, 0)
    if ndim == 0:
        return []
    n = struct.unpack_from("<i", body, 12)[0]
    return list(struct.unpack_from(f"<{n}h", body, 20))


# --- format_type (utils/adt/format_type.c) ------------------------------------------------------
_KEYWORDS = frozenset("""
all analyse analyze and any array as asc asymmetric authorization between bigint binary bit
boolean both case cast char character check coalesce collate collation column concurrently
constraint create cross current_catalog current_date current_role current_schema current_time
current_timestamp current_user dec decimal default deferrable desc distinct do else end except
exists extract false fetch float for foreign freeze from full grant greatest group grouping
having ilike in initially inner inout int integer intersect interval into is isnull join
lateral leading least left like limit localtime localtimestamp national natural nchar none
normalize not notnull null nullif numeric offset on only or order out outer overlaps overlay
placing position precision primary real references returning right row select session_user
setof similar smallint some substring symmetric table tablesample then time timestamp to
trailing treat trim true union unique user using values varchar variadic verbose when where
window with xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse
xmlpi xmlroot xmlserialize xmltable""".split())
_KEYWORDS_16 = frozenset("json_array json_arrayagg json_object json_objectagg system_user".split())
_KEYWORDS_17 = frozenset("json json_exists json_query json_scalar json_serialize json_table "
                         "json_value merge_action".split())


def quote_identifier(ident: str, major: int) -> str:
    """ruleutils.c's quote_identifier: quoted unless lower-case safe and not a keyword
    (unreserved keywords excepted)."""
    safe = bool(ident) and (ident[0].islower() or ident[0] == "_") and all(
        ("a" <= ch <= "z") or ("0" <= ch <= "9") or ch == "_" for ch in ident) and \
        ident[0] not in "0123456789"
    if safe and (ident in _KEYWORDS or (major >= 16 and ident in _KEYWORDS_16) or
                 (major >= 17 and ident in _KEYWORDS_17)):
        safe = False
    return ident if safe else '"' + ident.replace('"', '""') + '"'


_SPECIAL = {16: "boolean", 700: "real", 701: "double precision", 21: "smallint",
            23: "integer", 20: "bigint",
            114: "json"}  # json: a keyword from 17 on, still printed unquoted
# type oid -> (name with a typmod, name without)
_WITH_TYPMOD = {1700: ("numeric", "numeric"), 1186: ("interval", "interval"),
                1083: ("time", "time without time zone"),
                1266: ("time", "time with time zone"),
                1114: ("timestamp", "timestamp without time zone"),
                1184: ("timestamp", "timestamp with time zone"),
                1562: ("bit varying", "bit varying"),
                1043: ("character varying", "character varying")}
_INTERVAL_FIELDS = {1 << 2: " year", 1 << 1: " month", 1 << 3: " day", 1 << 10: " hour",
                    1 << 11: " minute", 1 << 12: " second", (1 << 2) | (1 << 1): " year to month",
                    (1 << 3) | (1 << 10): " day to hour",
                    (1 << 3) | (1 << 10) | (1 << 11): " day to minute",
                    (1 << 3) | (1 << 10) | (1 << 11) | (1 << 12): " day to second",
                    (1 << 10) | (1 << 11): " hour to minute",
                    (1 << 10) | (1 << 11) | (1 << 12): " hour to second",
                    (1 << 11) | (1 << 12): " minute to second"}


def _typmodout(oid: int, typmod: int, major: int) -> str:
    """What the type's typmodout function prints for a typmod >= 0."""
    if oid in (1042, 1043):  # bpchar, varchar
        return f"({typmod - 4})" if typmod > 4 else ""
    if oid == 1700:
        precision = ((typmod - 4) >> 16) & 0xFFFF
        scale = ((((typmod - 4) & 0x7FF) ^ 1024) - 1024) if major >= 15 else (typmod - 4) & 0xFFFF
        return f"({precision},{scale})"
    if oid in (1083, 1114):
        return f"({typmod}) without time zone"
    if oid in (1266, 1184):
        return f"({typmod}) with time zone"
    if oid == 1186:
        fields = _INTERVAL_FIELDS.get((typmod >> 16) & 0x7FFF, "")
        precision = typmod & 0xFFFF
        return f"{fields}({precision})" if precision != 0xFFFF else fields
    return f"({typmod})"  # bit, varbit, and types whose typmodout is not known here


def format_type(types: dict[int, dict[str, Any]], namespaces: dict[int, str], oid: int,
                typmod: int, major: int) -> str:
    """format_type(oid, typmod) for a column: typmod given (-1 when none)."""
    t = types.get(oid)
    if t is None:
        return "???"
    is_array = False
    if t["typelem"] and t["typlen"] == -1 and t["typstorage"] != "p":
        is_array = True
        oid = t["typelem"]
        t = types.get(oid)
        if t is None:
            return "???[]"
    with_typmod = typmod >= 0
    name: str | None = _SPECIAL.get(oid)
    if oid in _WITH_TYPMOD:
        plain_name, bare = _WITH_TYPMOD[oid]
        name = plain_name + _typmodout(oid, typmod, major) if with_typmod else bare
    elif oid == 1042 and with_typmod:  # bpchar
        name = "character" + _typmodout(oid, typmod, major)
    elif oid == 1560 and with_typmod:  # bit
        name = "bit" + _typmodout(oid, typmod, major)
    if name is None:
        name = quote_identifier(t["typname"], major)
        if not _type_visible(types, oid, t):
            name = quote_identifier(namespaces.get(t["typnamespace"], "?"), major) + "." + name
        if with_typmod:
            name += _typmodout(oid, typmod, major) if t["typmodout"] else f"({typmod})"
    return name + "[]" if is_array else name


def _type_visible(types: dict[int, dict[str, Any]], oid: int, t: dict[str, Any]) -> bool:
    """TypeIsVisible under the default search_path ("$user", public; pg_catalog first)."""
    path = [11, 2200]  # pg_catalog, public (a schema named as the user is not looked for)
    if t["typnamespace"] not in path:
        return False
    for nsp in path:
        if nsp == t["typnamespace"]:
            return True
        if any(o != oid and u["typnamespace"] == nsp and u["typname"] == t["typname"]
               for o, u in types.items()):
            return False
    return True  # pragma: no cover
