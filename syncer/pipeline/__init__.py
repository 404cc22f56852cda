"""The pipeline ``syncer run`` and ``syncer sync --once`` share.

- ``settings``: the Git source and write-back options, declared once and bound to both
  commands (flag, ``SYNCER_*`` environment variable, config-file key);
- ``run``: :class:`~syncer.pipeline.run.Pipeline`, which builds the source and its
  write-back from those settings and runs one reconcile followed by the write-back.
"""
