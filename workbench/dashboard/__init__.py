"""The Streamlit dashboard: reads the audit store, writes only reviews and new campaigns."""

DB_ENV = "NLA_WORKBENCH_DB"
"""Environment variable naming the store (a SQLite path or SQLAlchemy URL); ``nla-workbench dashboard`` sets it."""
