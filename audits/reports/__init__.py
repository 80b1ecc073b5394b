"""Audit reports (HTML, PDF, Markdown) and analysis-ready exports of a campaign, read from the store."""
