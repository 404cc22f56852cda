"""The Git side of syncer: the tracked source, signature checks, and write-back.

``GitSource`` (tracking.py) polls a remote branch or tag with ``ls-remote``, fetches into
one local clone only when the head moved, verifies signatures (signatures.py) and exports
commits for rendering. ``StatusWriter`` (writeback.py) commits the status branch and the
``refs/notes/syncer`` notes, and pushes them without ever forcing. Both authenticate
through auth.py (credentials only in the environment of git processes) and fail with one
:class:`SourceError` whose message never carries a credential.
"""

from syncer.source.config import RemoteConfig, SourceConfig, VerifyConfig
from syncer.source.errors import Reason, SourceError
from syncer.source.tracking import GitSource, Revision

__all__ = [
    "GitSource",
    "Reason",
    "RemoteConfig",
    "Revision",
    "SourceConfig",
    "SourceError",
    "VerifyConfig",
]
