"""Errors of the audit store: each names the database it is about (passwords masked)."""

from nla.errors import NLAError


class StoreError(NLAError):
    """The store cannot be opened, is at the wrong schema revision, or cannot be migrated."""
