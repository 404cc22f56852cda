"""``syncer demo``: the whole GitOps story on one machine, in a minute or two.

A real kube-apiserver and etcd, simulated Windows hosts behind real SSH servers, a bare
Git remote seeded from ``examples/byoh``, a simulated forge API, and the real controller
(``syncer run``) as a child process: syncer applies ``main``, the hosts join, a pull
request bumps the Windows node components and gets a preview comment, its merge rolls out
one host at a time, and the status goes back to Git. Then everything is cleaned up.

Modules: ``command`` (the click command, exit codes, signals, clean-up), ``story`` (the
steps and what each waits for), ``lab`` (starting and stopping the parts), ``fleet``
(``examples/byoh`` made runnable here: payloads, addresses), ``observe`` (the status
table, maxUnavailable from the hosts' own logs), ``ui`` (rich on a terminal, plain lines
otherwise). The parts themselves are the test infrastructure in :mod:`syncer_lab`.
"""

from syncer_lab.demo.command import demo_command, run_demo

__all__ = ["demo_command", "run_demo"]
