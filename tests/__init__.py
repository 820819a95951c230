"""The scgi_twisted test suite."""
