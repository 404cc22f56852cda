"""``syncer run``: the in-cluster controller around the one-shot reconcile.

Layers, each a small module with one job (imports only go downwards in this list):

- ``app``: the composition root of ``syncer run``; threads, signals, graceful shutdown;
  ``runtimeuser``: a passwd entry for OpenShift's arbitrary UID (ssh needs one).
- ``fleets``: one loop per WindowsFleet (``--fleet-object '*'``); ``fleetobject``: a
  WindowsFleet's spec, "reconcile now" and kstatus status; ``fleetsecrets``: the Secrets
  it names, as files.
- ``wiring``: builds the :data:`~syncer.controller.loop.Reconciler` (the pipeline's
  reconcile, from flags or from a WindowsFleet); ``nodestage``: the node
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
