"""Terminal colours (ANSI SGR codes), for the console and `cde-bot check`.

Callers decide whether to colour at all (a terminal, and NO_COLOR unset).
"""

from __future__ import annotations

BOLD = "\033[1m"
DIM = "\033[2m"
RED = "\033[31m"
GREEN = "\033[32m"
YELLOW = "\033[33m"
RESET = "\033[0m"
