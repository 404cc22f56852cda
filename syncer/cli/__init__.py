"""The ``syncer`` command line: every click command, thin (parse, call, print).

- ``main``: the click group, its lazily loaded subcommands, ``validate`` and ``render``;
- ``apply``: ``plan`` and ``sync --once``; ``options``: option groups both share with
  ``run``, and ``-o`` of every read command;
- ``status``: ``syncer status``; ``history``: ``syncer history``;
- ``controller``: ``run``, ``suspend``, ``resume``, ``reconcile``;
- ``about``: ``version`` (the CLI's and the leading controller's) and ``completion``.

``syncer demo`` lives with the simulators in :mod:`syncer_lab` (a development install),
loaded by name only when asked for.
"""

from syncer.cli.main import cli, main

__all__ = ["cli", "main"]
