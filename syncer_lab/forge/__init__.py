"""A strict local forge (GitHub, GitLab, Gitea) for tests and the demo.

    with ForgeSimulator("gitlab", max_page_size=2) as sim:
        sim.add_pull_request(7, head_sha="a" * 40, base="main")
        ...  # point a client at sim.api_url with token sim.token
        assert [r.method for r in sim.requests] == [...]
        sim.assert_clean()

:mod:`.core` is the engine (server, request log, faults, paging); :mod:`.github`,
:mod:`.gitlab` and :mod:`.gitea` implement exactly the endpoints syncer's forge clients
use, with each forge's paths, authentication, errors and limits.
"""

from .core import (
    Fault,
    ForgeSimulator,
    RecordedRequest,
    SimComment,
    SimPullRequest,
    SimStatus,
)

__all__ = [
    "Fault",
    "ForgeSimulator",
    "RecordedRequest",
    "SimComment",
    "SimPullRequest",
    "SimStatus",
]
