"""The fleet repository: load, validate and render it.

A fleet repository holds YAML documents: one ``Fleet``, any number of
``WindowsMachineSet``, ``BYOHHosts`` and ``WindowsRuntimeClass`` documents (the compact
kinds, ``apiVersion: syncer.io/v1alpha1``), and any other Kubernetes objects, which pass
through. The contract is documented field by field in docs/fleet-repository.md.

Public API (other stages build on it)::

    from syncer.fleet import load_fleet, check_fleet, render, FleetModel
    model = load_fleet(path)          # raises UserError with every error
    model, problems = check_fleet(path)   # never raises for user mistakes
    objects = render(model)           # deterministic list of plain dicts
    model.source_of("MachineSet", "openshift-machine-api", "win")  # -> (file, line)

Modules, one job each: ``loading`` (files and YAML with positions, bounded), ``fields`` (typed
field access with problems), ``formats`` (scalar syntax checks), ``model`` (dataclasses),
``platforms`` (per-platform MachineSet facts), ``kinds`` (the compact kinds),
``passthrough`` (other objects), ``admission`` (what the operator lets pass through),
``dispatch`` (documents -> readers by kind), ``validation`` (rules across documents),
``rendering``
(model -> objects), ``output`` (YAML / JSON text), ``api`` (the entry points).
"""

from syncer.fleet.api import check_fleet, load_fleet, summary
from syncer.fleet.model import (
    BYOHHost,
    ComponentSpec,
    Fleet,
    FleetModel,
    HostKeyPolicy,
    NodePolicy,
    OnFailure,
    Platform,
    PrunePolicy,
    RawObject,
    Rollout,
    Source,
    StatusPolicy,
    UserDataMode,
    WindowsMachineSet,
    WindowsRuntimeClass,
)
from syncer.fleet.output import to_json, to_yaml
from syncer.fleet.rendering import render

__all__ = [
    "BYOHHost",
    "ComponentSpec",
    "Fleet",
    "FleetModel",
    "HostKeyPolicy",
    "NodePolicy",
    "OnFailure",
    "Platform",
    "PrunePolicy",
    "RawObject",
    "Rollout",
    "Source",
    "StatusPolicy",
    "UserDataMode",
    "WindowsMachineSet",
    "WindowsRuntimeClass",
    "check_fleet",
    "load_fleet",
    "render",
    "summary",
    "to_json",
    "to_yaml",
]
