"""The entry points of the fleet stage: check, load and summarise a fleet repository.

``check_fleet(path)`` never raises for user mistakes: it returns the model (None when
anything is wrong) and every problem, errors and warnings, sorted by file and line. The
PR preview uses it to show everything at once. ``load_fleet(path)`` is the strict form
the controller and the CLI use: it raises :class:`~syncer.problems.UserError` with every
error and keeps the warnings in ``model.warnings``.

Steps: find and parse the files (:mod:`.loading`), read each document by kind
(:mod:`.dispatch` into :mod:`.kinds` and :mod:`.passthrough`), apply the rules across
documents (:mod:`.validation`), and assemble the :class:`~syncer.fleet.model.FleetModel`.
"""

from __future__ import annotations

from pathlib import Path

from syncer.fleet import admission, dispatch, loading, validation
from syncer.fleet.admission import PassThroughPolicy
from syncer.fleet.fields import Report
from syncer.fleet.model import FleetModel
from syncer.problems import Problem, UserError, errors


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.file, p.line))


def check_loaded(loaded: loading.LoadedFiles, policy: PassThroughPolicy = admission.DEFAULT
                 ) -> tuple[FleetModel | None, list[Problem]]:
    """Validate already parsed files; see :func:`check_fleet`."""
    report = Report()
    report.extend(loaded.problems)
    parts = dispatch.read_documents(loaded.documents, report)
    admission.admit(parts.raw, policy, report)
    sources = validation.cross_check(parts, report, loaded.had_syntax_errors, loaded.display_root)
    problems = _sorted(report.problems)
    head = parts.head
    if report.errors or head is None or head.fleet is None:
        return None, problems
    model = FleetModel(
        root=loaded.root,
        fleet=head.fleet,
        machine_sets=parts.machine_sets,
        byoh_hosts=parts.byoh_hosts,
        byoh_sources=[d.source for d in parts.byoh],
        runtime_classes=parts.runtime_classes,
        objects=parts.raw,
        warnings=[p for p in problems if not p.is_error],
        files=loaded.files,
        sources=sources,
    )
    return model, problems


def check_fleet(
    path: Path | str, *, display_prefix: str = "",
    policy: PassThroughPolicy = admission.DEFAULT,
    cache: loading.ParseCache | None = None,
) -> tuple[FleetModel | None, list[Problem]]:
    """Load and validate the fleet at ``path`` without raising for user mistakes.

    Returns ``(model, problems)``: ``model`` is None when there is any error; ``problems``
    holds errors and warnings sorted by file and line. ``path`` is a directory (searched
    recursively) or a single YAML file. Files are named relative to the fleet root, or
    ``<display_prefix>/<file>`` when a prefix is given (the CLI's view). ``policy`` is
    what pass-through objects may be (:mod:`.admission`). ``cache``: files unchanged since
    the previous load with this cache are not parsed again (:class:`.loading.ParseCache`).
    """
    root = Path(path)
    if not root.exists():
        return None, [Problem(str(path), 0, "no such file or directory")]
    return check_loaded(loading.load_path(root, display_prefix, cache), policy)


def load_fleet(path: Path | str, policy: PassThroughPolicy = admission.DEFAULT,
               cache: loading.ParseCache | None = None) -> FleetModel:
    """Load and validate the fleet at ``path``; raise UserError with every error."""
    model, problems = check_fleet(path, policy=policy, cache=cache)
    if model is None:
        raise UserError(errors(problems))
    return model


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else (plural or singular + 's')}"


def summary(model: FleetModel) -> str:
    """One line describing a valid fleet, for ``syncer validate``."""
    fleet = model.fleet
    parts = [
        "1 Fleet",
        _plural(len(model.machine_sets), "WindowsMachineSet"),
        _plural(len(model.byoh_hosts), "BYOH host"),
        _plural(len(model.runtime_classes), "RuntimeClass", "RuntimeClasses"),
        _plural(len(model.objects), "other object"),
    ]
    return f"fleet {fleet.name} ({fleet.platform}): {', '.join(parts)} — valid"
