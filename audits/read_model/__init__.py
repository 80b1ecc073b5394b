"""The read model: every query the dashboard and the reports show, in one place, so their numbers cannot
disagree. The faces (``workbench.dashboard``, ``audits.reports``) only present what these return.

- :mod:`audits.read_model.arms`: which NLA checkpoint and sampling a campaign's runs used, and exactly
  which explanations are the campaign's (its activations under that checkpoint and sampling, whichever
  run wrote them); the fidelity of those explanations; the campaigns table.
- :mod:`audits.read_model.flags`: raised flags with their review state, flag rates and what a cell of a
  given size can detect, the verdict counts behind an empty result.
- :mod:`audits.read_model.leads`: discovered terms as leads to review: a discovery table with each term's
  standing in the other channels (visible replies, logit lens) and its review state.
- :mod:`audits.read_model.transcripts`: transcripts, messages, tokens with their scores, explanation
  samples with detector scores and thresholds, and the evidence (excerpt and samples) behind a flag.

Every query runs in short read transactions, so a campaign that is writing is never blocked."""
