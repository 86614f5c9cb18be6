"""Test support: locate/install real PostgreSQL binaries (`pgbin`) and run throwaway clusters (`cluster`)."""
