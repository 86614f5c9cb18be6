"""Row-level replay of heap records on full-page images (the startup process, for forensics). Not built yet."""
