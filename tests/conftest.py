"""Shared pytest configuration: fixture plugins from syncer.testing."""

pytest_plugins: list[str] = [
]
