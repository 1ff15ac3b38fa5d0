"""Alembic migrations of the metadata center (a package so that it ships inside the wheel)."""
