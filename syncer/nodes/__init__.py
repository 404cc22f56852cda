"""The node stage: one round over every Windows host, from the cluster to the hosts.

Modules, in layer order (each imports only what is below it):

- ``stage``: one round (inputs → probe → plan → payloads → rollout → removals → report);
- ``rollout`` (at most ``maxUnavailable`` hosts out, resumes first), ``slots`` (the
  rollout Lease and failure records), ``configure`` (one host's steps), ``deconfigure``;
- ``hostplan`` (what a host needs), ``probe`` (one inventory command per host),
  ``payloads`` (fetched and verified before any host is touched);
- cluster side: ``inputs`` (what is applied: syncer-fleet, windows-instances, Machines,
  Nodes, the key), ``annotations`` (WMCO's and syncer's Node records), ``csr`` (kubelet
  CSR approval), ``drain``, ``kubeconfig`` (bootstrap files), ``userdata``, ``status``
  (the per-host rows and their ConfigMap), ``progress``;
- host side: ``ssh`` (sessions, uploads, reboots), ``hostkeys`` (pinning), ``resolving``;
- ``windows/``: what a Windows host is — the command vocabulary, the layout of ``C:\\k``
  and the services, the SSH key — pure, importing nothing of the round.
"""
