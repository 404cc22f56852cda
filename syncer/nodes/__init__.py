"""The node stage: one round over every Windows host, from the cluster to the hosts.

Modules, in layer order (each imports only what is below it):

- ``stage``: one round (inputs → the round's facts → probe → CSRs → plan → payloads →
  rollout → removals → report);
- ``rollout`` (at most ``maxUnavailable`` hosts out, resumes first), ``rollback``
  (``onFailure: rollback``), ``slots`` (the rollout Lease and failure records),
  ``configure`` (one host's steps), ``overlay`` (its network step), ``deconfigure``;
- ``context`` (what a round shares with its hosts, how a host's run ends), ``services``
  (stop, start, create, delete a Windows service, with the waits);
- ``hostplan`` (what a host needs), ``probe`` (two commands per host), ``managedfiles``
  (the configuration files kept current on every host), ``payloads`` (fetched and
  verified before any host is touched; a tarball's member as the host sees it),
  ``downloads`` (where a payload may come from and how much of it);
- cluster side: ``inputs`` (what is applied: syncer-fleet, windows-instances, Machines,
  Nodes, the key), ``clusterinfo`` (the API URL, service network, hybrid overlay, proxy,
  trusted CAs), ``registries`` (containerd's mirror files), ``annotations`` (WMCO's and
  syncer's Node records), ``usernames`` (WMCO's encrypted user name), ``csr`` (kubelet
  CSR approval), ``drain``, ``kubeconfig`` (bootstrap files), ``userdata``, ``status``
  (the per-host rows and syncer's own records, in their ConfigMap), ``progress``,
  ``wmco`` (whether WMCO manages the nodes, so the round stands aside);
- host side: ``ssh`` (sessions, uploads, reboots), ``hostkeys`` (pinning), ``resolving``;
- ``windows/``: what a Windows host is — the command vocabulary, the layout of ``C:\\k``
  and the services, the files WMCO writes there, the SSH key — pure, importing nothing of
  the round.
"""
