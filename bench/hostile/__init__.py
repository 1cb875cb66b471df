"""A census of faults: the real bot's code paths over loopback against a hostile CDE API,
a flaky Slack, a broken store and forged requests, counting what was lost, told twice,
leaked or accepted that should not have been.

Run: python -m bench.hostile [--quick] [--json PATH] [--only NAME]
"""
