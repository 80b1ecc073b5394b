"""Errors of the audit domain: each names the file, line and field it is about."""

from nla.errors import NLAError


class SpecError(NLAError):
    """A campaign, scenario or theme file is malformed or refers to something unknown."""
