"""One module per domain; each ends in a `Definitions` that the root assembles."""
