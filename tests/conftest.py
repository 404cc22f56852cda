"""Shared pytest configuration: fixture plugins from syncer_lab."""

pytest_plugins: list[str] = [
    "plugins.git_fixtures",
    "plugins.kube_fixtures",
    "plugins.host_fixtures",
    "plugins.nodelab_fixtures",
]
