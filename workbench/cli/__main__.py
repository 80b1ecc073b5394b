"""``python -m workbench.cli``: the same entry point as the ``nla-workbench`` script."""

from workbench.cli.app import main

main()
