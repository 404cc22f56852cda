"""Simulated-host tests. Fixtures come from ``plugins.host_fixtures``; its
``host_lab`` fails a test whose hosts received commands outside the vocabulary."""
