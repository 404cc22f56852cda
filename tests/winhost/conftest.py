"""Simulated-host tests. Fixtures come from ``syncer.testing.fixtures_hosts``; its
``host_lab`` fails a test whose hosts received commands outside the vocabulary."""
