"""`cde-bot console`: the bot's own listeners and renderers, answered in a terminal."""
