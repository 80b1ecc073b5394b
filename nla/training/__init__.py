"""Training NLAs: data generation, teacher explanations, AR / AV warm starts, GRPO, evaluation and
export. Each stage reads and writes inside one run directory (``nla.training.run.RunDir``) and can be
interrupted and re-run to continue."""
