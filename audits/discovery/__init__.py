"""Discovery: what one arm's explanations (or replies, or logit lens) say that another arm's do not."""

from audits.discovery.corpus import FIRST_REPLY_TOKENS, SOURCES, documents
from audits.discovery.discover import GROUPS, Discovery, discover, rank_terms
from audits.discovery.keyness import log_odds_z

__all__ = [
    "FIRST_REPLY_TOKENS",
    "GROUPS",
    "SOURCES",
    "Discovery",
    "discover",
    "documents",
    "log_odds_z",
    "rank_terms",
]
