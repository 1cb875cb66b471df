"""A sample CDE API: serves the reference page's runs (and more) over real HTTP.

Used by the demo, by `cde-bot demo-api`, and by the tests as the CDE stand-in.
"""
