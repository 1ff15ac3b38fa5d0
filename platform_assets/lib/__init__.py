"""Shared library: configuration, IO managers and resources used by every domain."""
