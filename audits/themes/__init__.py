"""Audit themes: versioned definitions, detectors that score explanations for them, flag rules,
the unverbalized check, condition-vs-control statistics and validation against human labels."""
