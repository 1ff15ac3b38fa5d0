"""Curation helpers any embedded dataset can use: PII detection and masking (pii.py)."""
