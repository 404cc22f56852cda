"""The benchmark's generated fleet is what it claims to be (the timing is benchmarks/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from syncer.fleet import load_fleet, render

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet_validate.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fleet_validate_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_fleet_is_valid_and_full_size(tmp_path: Path) -> None:
    bench = _benchmark()
    assert bench.HOSTS == 50_000  # what `make bench` measures; a tenth of it here
    bench.generate(tmp_path, 5000)
    model = load_fleet(tmp_path)
    assert len(model.byoh_hosts) == 5000
    assert len(model.machine_sets) == 200
    assert len(model.runtime_classes) == 50
    assert len(list(tmp_path.rglob("*.yaml"))) > 50  # spread over many files
    objects = render(model)
    instances = [o for o in objects if o["metadata"]["name"] == "windows-instances"]
    assert len(instances[0]["data"]) == 5000
    assert bench.parse_only(tmp_path) == 1 + 50 + 200 + 50 + 2
