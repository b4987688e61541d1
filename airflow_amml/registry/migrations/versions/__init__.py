"""One module per registry schema revision."""
