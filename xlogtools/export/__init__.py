"""Writers of decoded records: text lines, and (later) waldump text, jsonl, csv, parquet."""
