"""Curation helpers any embedded dataset can use: PII detection and masking (pii.py), semantic near-duplicates
against an ANN index, within a delivery and in a full pass (near_duplicates.py), kNN-distance outliers
(outliers.py), embedding drift (drift.py: MMD² with a permutation test), the near-duplicate threshold's
calibration on generated labelled pairs (calibration.py), plots for metadata (plots.py) and the policy resource
(policy.py)."""
