"""``syncer run``: the in-cluster controller around the one-shot reconcile.

Layers, each a small module with one job (imports only go downwards in this list):

- ``commands``: the click commands ``run``, ``suspend``, ``resume``, ``reconcile``.
- ``app``: the composition root of ``syncer run``; threads, signals, graceful shutdown.
- ``wiring``: builds the :data:`~syncer.controller.loop.Reconciler` (the real reconcile,
  ``syncer.reconcile.reconcile_once``, or a test's scripted one); ``nodestage``: the node
  stage's options and its progress as metrics and Events inside that reconcile.
- ``loop``: when to reconcile (leadership, interval with jitter, webhooks, reconcile-now,
  suspend), one at a time, with a park token for safe shutdown.
- ``server`` (+ ``webhooks``, ``metrics``): the one HTTP server: probes, Prometheus
  metrics, forge webhooks.
- ``leader``: Lease-based leader election; ``control``: the ``syncer-control`` ConfigMap;
  ``events``: Kubernetes Events; ``credentials``: Secret files reloaded on rotation.
- ``config``: ``ControllerConfig`` from flags, environment and a YAML file; ``logs``:
  structured, redacted logs. They talk to the API server in plain JSON through
  :class:`~syncer.cluster.client.KubeClient` (:mod:`syncer.cluster.objects`).
"""
