"""The streaming engine: replication protocol (sans-I/O), receiver and sender. Not built yet."""
