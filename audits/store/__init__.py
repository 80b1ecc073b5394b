"""The audit store: SQL tables (SQLite by default, PostgreSQL by URL), migrations and helpers."""

from audits.store.db import Store, add_counts, check_schema, insert_ignore, insert_new, open_store
from audits.store.errors import StoreError
from audits.store.keys import canonical_json, json_key
from audits.store.migrate import current_revision, downgrade, head_revision, upgrade
from audits.store.orm import (
    Base,
    SQLAActivation,
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLAFlagTally,
    SQLALogitLens,
    SQLAMessage,
    SQLAReview,
    SQLARun,
    SQLARunLease,
    SQLAThemeDefinition,
    SQLAThemeScore,
    SQLATokenPosition,
    SQLATranscript,
    SQLATriageScore,
    SQLAVariant,
)
from audits.store.vectors import activation_key, blob_to_vector, vector_digest_of, vector_to_blob

__all__ = [
    "Base",
    "SQLAActivation",
    "SQLACampaign",
    "SQLAExplanation",
    "SQLAFlag",
    "SQLAFlagTally",
    "SQLALogitLens",
    "SQLAMessage",
    "SQLAReview",
    "SQLARun",
    "SQLARunLease",
    "SQLAThemeDefinition",
    "SQLAThemeScore",
    "SQLATokenPosition",
    "SQLATranscript",
    "SQLATriageScore",
    "SQLAVariant",
    "Store",
    "StoreError",
    "activation_key",
    "add_counts",
    "blob_to_vector",
    "canonical_json",
    "check_schema",
    "current_revision",
    "downgrade",
    "head_revision",
    "insert_ignore",
    "insert_new",
    "json_key",
    "open_store",
    "upgrade",
    "vector_digest_of",
    "vector_to_blob",
]
