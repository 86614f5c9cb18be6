"""The hot-path struct formats agree with the construct declarations, on real WAL bytes;
Lsn and segment names behave as PostgreSQL's macros do."""
from __future__ import annotations

from pathlib import Path

import pytest
import zstandard

from xlogtools.lsn import Lsn, parse_segment_name, segment_name
from xlogtools.parse import layout as L

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "pg15" / "wal"


def first_segment() -> bytes:
    f = sorted(FIXTURE.glob("*.zst"))[0]
    return zstandard.ZstdDecompressor().decompress(f.read_bytes(), max_output_size=1 << 24)


def test_page_and_record_headers_agree_with_construct() -> None:
    seg = first_segment()
    long = L.XLogLongPageHeaderData.parse(seg[:L.SIZE_OF_LONG_PHD])
    magic, info, tli, addr, rem, sysid, seg_size, blcksz = L.LONG_PAGE_HEADER.unpack_from(seg, 0)
    assert (long.xlp_magic, long.xlp_info, long.xlp_tli, long.xlp_pageaddr, long.xlp_rem_len,
            long.xlp_sysid, long.xlp_seg_size, long.xlp_xlog_blcksz) == \
        (magic, info, tli, addr, rem, sysid, seg_size, blcksz)
    assert L.PAGE_MAGIC_TO_MAJOR[magic] == 15 and seg_size == len(seg) and blcksz == 8192
    assert L.XLogLongPageHeaderData.sizeof() == L.SIZE_OF_LONG_PHD
    assert L.XLogPageHeaderData.sizeof() == L.SIZE_OF_SHORT_PHD == L.PAGE_HEADER.size + 4
    short = L.XLogPageHeaderData.parse(seg[8192:8192 + 24])
    assert (short.xlp_magic, short.xlp_pageaddr) == (magic, addr + 8192)
    assert L.XLogRecord.sizeof() == L.SIZE_OF_XLOG_RECORD == L.RECORD_HEADER.size
    # the first whole record of the second page, found through xlp_rem_len
    off = 8192 + 24 + L.maxalign(short.xlp_rem_len)
    rec = L.XLogRecord.parse(seg[off:off + 24])
    assert (rec.xl_tot_len, rec.xl_xid, rec.xl_prev, rec.xl_info, rec.xl_rmid, rec.xl_crc) == \
        L.RECORD_HEADER.unpack_from(seg, off)


def test_block_header_layouts() -> None:
    assert L.XLogRecordBlockHeader.sizeof() == 1 + L.BLOCK_HEADER.size
    assert L.XLogRecordBlockImageHeader.sizeof() == L.IMAGE_HEADER.size == 5
    assert L.RelFileLocator.sizeof() == L.RELFILE.size == 12


@pytest.mark.parametrize("text,value", [("0/0", 0), ("16/B374D848", 0x16B374D848),
                                        ("FFFFFFFF/FFFFFFFF", (1 << 64) - 1), ("0/1", 1)])
def test_lsn_round_trip(text: str, value: int) -> None:
    assert Lsn(text) == value and str(Lsn(value)) == text.upper()


def test_lsn_rejects_garbage() -> None:
    for bad in ["", "16", "16/", "g/1", "1/2/3", "123456789/0"]:
        with pytest.raises(ValueError):
            Lsn(bad)
    assert Lsn("0/1A2B3C").waldump() == "0/001A2B3C"


@pytest.mark.parametrize("seg_size", [1 << 20, 16 << 20, 1 << 30])
def test_segment_names_for_any_size(seg_size: int) -> None:
    # XLogFileName: the low 32 bits of the segment number wrap every 4 GB of WAL
    per = 0x100000000 // seg_size
    for segno in (0, 1, per - 1, per, 5 * per + 3):
        name = segment_name(1, segno, seg_size)
        assert parse_segment_name(name, seg_size) == (1, segno)
    assert segment_name(2, per + 1, seg_size) == f"00000002{1:08X}{1:08X}"
    with pytest.raises(ValueError):
        parse_segment_name(f"00000001{0:08X}{per:08X}", seg_size)
