"""Resource manager ids and names (access/rmgrlist.h): the one table of them.

Row order = on-disk id (RM_XLOG_ID = 0 ... RM_LOGICALMSG_ID = 21). Ids 128-255 are custom
resource managers (15+). parse.layout and the RMGRS table of this package take theirs from
here; this module imports nothing, so the lowest layers can use it.
"""
from __future__ import annotations

RMGR_NAMES: tuple[str, ...] = (
    "XLOG", "Transaction", "Storage", "CLOG", "Database", "Tablespace", "MultiXact",
    "RelMap", "Standby", "Heap2", "Heap", "Btree", "Hash", "Gin", "Gist", "Sequence",
    "SPGist", "BRIN", "CommitTs", "ReplicationOrigin", "Generic", "LogicalMessage",
)

(RM_XLOG_ID, RM_XACT_ID, RM_SMGR_ID, RM_CLOG_ID, RM_DBASE_ID, RM_TBLSPC_ID, RM_MULTIXACT_ID,
 RM_RELMAP_ID, RM_STANDBY_ID, RM_HEAP2_ID, RM_HEAP_ID, RM_BTREE_ID, RM_HASH_ID, RM_GIN_ID,
 RM_GIST_ID, RM_SEQ_ID, RM_SPGIST_ID, RM_BRIN_ID, RM_COMMIT_TS_ID, RM_REPLORIGIN_ID,
 RM_GENERIC_ID, RM_LOGICALMSG_ID) = range(len(RMGR_NAMES))

RM_MAX_BUILTIN_ID = len(RMGR_NAMES) - 1
RM_MIN_CUSTOM_ID = 128
RM_MAX_CUSTOM_ID = 255


def rmgr_name(rmid: int) -> str:
    """The name pg_waldump prints: built-in names, 'custom###' for 128-255."""
    if 0 <= rmid <= RM_MAX_BUILTIN_ID:
        return RMGR_NAMES[rmid]
    if RM_MIN_CUSTOM_ID <= rmid <= RM_MAX_CUSTOM_ID:
        return f"custom{rmid:03d}"
    return f"unknown{rmid}"


def rmgr_id_valid(rmid: int, major: int) -> bool:
    """RmgrIdIsValid(): builtin ids, and custom ids from 15 on."""
    if rmid <= RM_MAX_BUILTIN_ID:
        return True
    return major >= 15 and rmid >= RM_MIN_CUSTOM_ID
