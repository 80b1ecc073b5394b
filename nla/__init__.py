"""The NLA engine: resolve models, extract residual-stream activations, verbalize them with an
activation verbalizer (AV) and score each explanation with the activation reconstructor (AR).

This package knows nothing of campaigns, SQL or user interfaces; it exposes plain Python types.
"""
