"""Kubernetes: the apply engine, and the ConfigMap records syncer keeps in the cluster.

Apply engine, one job per module, in data-flow order:

- ``client`` — :class:`KubeClient`: raw JSON requests, cached discovery, SSA, LIST,
  DELETE (``transport`` underneath: kept-alive connections);
- ``objects`` — :class:`ObjectRef`, Flux-style inventory ids;
- ``ordering`` — the safe apply order (stages);
- ``diff`` — live vs desired without false drift, RFC 6902 patches;
- ``inventory`` — what syncer applied, in a ConfigMap;
- ``prune`` — what may be deleted, and the prune guard;
- ``plan`` — :func:`compute_plan`: create / update / unchanged / prune per object;
- ``apply`` — :func:`apply_plan`: staged concurrent apply with retries, then prune;
- ``display`` — plans and results as text.

``syncer.reconcile`` puts them together (``reconcile_once``). ``configmaps`` reads and
patches the ConfigMaps syncer keeps its own records in (key by key, so writers of
different keys never undo each other).
"""
