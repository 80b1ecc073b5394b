"""The audit domain: scenario prompts and sample transcripts (campaigns, store and reports build on it)."""
