"""Path 2: a poll becomes failure notices in the channels that follow them."""
