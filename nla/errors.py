"""Errors a user can act on. Each message names the problem and where it is."""


class NLAError(Exception):
    """Base class for every error the engine raises on bad input."""


class ModelResolutionError(NLAError):
    """A model reference could not be turned into loadable weights."""


class CheckpointError(NLAError):
    """An NLA checkpoint is missing, malformed or does not fit its tokenizer or target."""


class TranscriptError(NLAError):
    """A chat transcript is malformed or does not fit the model."""


class VectorError(NLAError):
    """An activation vector cannot be verbalized (NaN/inf, zero, wrong width)."""


class PositionError(NLAError):
    """A token-position selection does not fit the transcript."""


class InputError(NLAError, ValueError):
    """An option or argument value is out of range or not one of the choices. Also a ValueError, so a
    check shared with pydantic validators is reported there as a field error."""


class TrainingError(NLAError):
    """A training run directory does not fit the command (saved by a different model or settings)."""
