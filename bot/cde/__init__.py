"""Everything that speaks to the CDE API: payload models, the client and its errors."""
