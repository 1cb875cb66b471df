"""The exit statuses of `cde-bot`, the same in every sub-command (cheap to import: the
command line reads them before it imports anything else)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a start-up error, or a check of `cde-bot check` that failed
EXIT_SETTINGS = 2  # settings missing or invalid (argparse uses 2 for a bad command line too)
