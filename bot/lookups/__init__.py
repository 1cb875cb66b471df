"""Path 1: a slash command or a click becomes an answer about runs."""
