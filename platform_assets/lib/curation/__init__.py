"""Curation helpers any embedded dataset can use: PII detection and masking (pii.py), semantic near-duplicates
(near_duplicates.py), kNN-distance outliers (outliers.py) and embedding drift (drift.py: MMD² with a permutation
test)."""
