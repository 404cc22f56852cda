"""paramiko, imported without its optional ``invoke``.

paramiko's ``config`` module imports ``invoke`` inside ``try``/``except ImportError``
(paramiko 5.1, ``paramiko/config.py``), only to run the ``Match exec`` lines of an
ssh_config file. syncer never reads an ssh_config, yet ``invoke`` and what it pulls in
(``unittest.mock``, asyncio) cost ``syncer run`` 3.6 MiB of resident memory and 87
modules (docs/performance.md). Every module of syncer that uses paramiko imports it from
here: ``invoke`` is kept out while paramiko is imported (``sys.modules[name] = None``
makes ``import invoke`` raise ImportError, as the import system documents), and let back
in at once, so anything importing it later gets it. Should a paramiko release import it
unconditionally, the import is simply done again with ``invoke``: the saving is lost,
never the start.
"""

from __future__ import annotations

import importlib
import sys

OPTIONAL = "invoke"


def _import_without_optional() -> None:
    if "paramiko" in sys.modules or OPTIONAL in sys.modules:
        return
    sys.modules[OPTIONAL] = None  # type: ignore[assignment]
    try:
        importlib.import_module("paramiko")
    except ImportError:  # a paramiko that needs it: import it with it, below
        for name in [n for n in sys.modules if n == "paramiko" or n.startswith("paramiko.")]:
            del sys.modules[name]
    finally:
        del sys.modules[OPTIONAL]


_import_without_optional()

import paramiko as paramiko  # noqa: E402  (imported above; named here for type checkers)
