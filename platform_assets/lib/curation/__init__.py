"""Curation helpers any embedded dataset can use: PII detection and masking (pii.py), semantic near-duplicates
(near_duplicates.py) and kNN-distance outliers (outliers.py)."""
