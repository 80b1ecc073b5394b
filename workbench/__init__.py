"""The faces of the workbench: the command line (and, later, the dashboard)."""
