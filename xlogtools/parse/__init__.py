"""Bytes -> records. Mirrors PostgreSQL's xlogreader: no I/O policy beyond reading files."""
