"""Operating the bot: health, readiness and metrics endpoints, and `cde-bot check`."""
