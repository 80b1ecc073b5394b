"""The ``nla-workbench`` command line."""
