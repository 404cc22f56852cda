"""Shared pytest configuration: fixture plugins from syncer.testing."""

pytest_plugins: list[str] = [
    "syncer.testing.fixtures_git",
    "syncer.testing.fixtures_kube",
    "syncer.testing.fixtures_hosts",
    "syncer.testing.fixtures_nodelab",
]
