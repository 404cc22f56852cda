"""Serialising rendered objects: multi-document YAML or a JSON ``v1`` ``List``.

Both forms are deterministic: keys are sorted, nothing depends on object identity.

The YAML is written by ruamel.yaml's safe (plain) dumper with three changes for the
consumers that read it (``kubectl apply -f``, ``oc``, humans reading a diff):

- strings that a YAML 1.1 parser would read as something else (``yes``, ``on``, ``y``,
  ``1:20``, ``1_000``, ``~``) are quoted. ruamel writes YAML 1.2, where those are
  strings, but Kubernetes' YAML decoder is YAML 1.1 and would turn ``on`` into ``true``;
- multi-line strings (the JSON documents of the Fleet ConfigMap) are block literals;
- no anchors and aliases, even when two objects share a dict.
"""

from __future__ import annotations

import io
import json
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import SafeRepresenter
from ruamel.yaml.resolver import VersionedResolver

_STR_TAG = "tag:yaml.org,2002:str"
_YAML11 = VersionedResolver(version=(1, 1))


def _represent_str(representer: SafeRepresenter, data: str) -> ScalarNode:
    style: str | None = None
    if "\n" in data:
        style = "|"
    elif _YAML11.resolve(ScalarNode, data, (True, False)) != _STR_TAG:
        style = "'"
    return representer.represent_scalar(_STR_TAG, data, style=style)


class _Representer(SafeRepresenter):
    def ignore_aliases(self, data: Any) -> bool:
        return True


_Representer.add_representer(str, _represent_str)


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.explicit_start = True
    yaml.width = 4096  # never fold long strings
    yaml.indent(mapping=2, sequence=2, offset=0)
    return yaml


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML, each object starting with ``---``."""
    if not objects:
        return ""
    stream = io.StringIO()
    _yaml().dump_all(objects, stream)
    return stream.getvalue()


def to_json(objects: list[dict[str, Any]]) -> str:
    """A ``v1`` ``List`` holding the objects, indented, keys sorted."""
    document = {"apiVersion": "v1", "kind": "List", "items": objects}
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
