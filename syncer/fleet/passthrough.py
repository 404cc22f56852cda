"""Checking pass-through objects: any Kubernetes object that is not a compact kind.

Pass-through objects are rendered as written (plus syncer's two labels), but they are
validated all the same, because a bad one would make the whole revision fail at apply
time, far from the line that caused it:

- every object: ``apiVersion``, ``kind``, ``metadata.name`` (a DNS subdomain name; RBAC
  objects may use any path-segment name like ``system:windows:reader``), a DNS label
  ``metadata.namespace``, well-formed labels and annotations, and no conflicting value
  for syncer's own labels. Fields the API server owns (``status``, ``uid``,
  ``resourceVersion``...) draw a warning.
- ``machine.openshift.io/v1beta1`` MachineSets labelled ``machine.openshift.io/os-id:
  Windows`` get the same Windows checks as the compact form: namespace
  ``openshift-machine-api``, the name length limit of azure and vsphere,
  ``userDataSecret: windows-user-data``, no machines on platform none.
- ``node.k8s.io`` RuntimeClasses need a ``handler``.
- a raw ``windows-instances`` ConfigMap must be in WMCO's exact format.
- objects that are not cluster objects at all (``v1 List``, kustomize ``Kustomization``)
  are refused.
"""

from __future__ import annotations

from typing import Any

from syncer import names
from syncer.fleet import formats, platforms
from syncer.fleet.fields import Fields, Report
from syncer.fleet.kinds import FleetHead
from syncer.fleet.loading import Document
from syncer.fleet.model import Platform, RawObject, Source
from syncer.fleet.yamlnodes import (
    UnsupportedValue,
    describe,
    is_mapping,
    key_line,
    to_plain,
    value_line,
)

SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
)
RBAC_GROUP = "rbac.authorization.k8s.io"


def api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _check_path_segment(value: str) -> str | None:
    if value in (".", "..") or "/" in value or "%" in value:
        return "must not be '.' or '..' and must not contain '/' or '%'"
    if len(value) > 253:
        return "must be at most 253 characters"
    return None


def _dig(node: Any, *keys: str) -> tuple[Any, Any, str | None]:
    """Follow ``keys`` through nested mappings: (value, parent mapping, last key)."""
    parent: Any = None
    key: str | None = None
    for k in keys:
        if not is_mapping(node):
            return None, parent, key
        parent, key, node = node, k, node.get(k)
    return node, parent, key


def read_raw(doc: Document, report: Report, head: FleetHead | None) -> RawObject | None:
    errors_before = report.errors
    data = doc.data
    api_version = str(data["apiVersion"])
    kind = str(data["kind"])
    group = api_group(api_version)
    top = Fields(report, doc.file, data)

    if kind == "List" or (kind.endswith("List") and "items" in data):
        report.error(doc.file, doc.line, f"{kind}: write each object as its own YAML document")
        return None
    if group == "kustomize.config.k8s.io":
        report.error(
            doc.file,
            doc.line,
            f"{kind} is a kustomize file, not a cluster object; syncer does not run kustomize",
        )
        return None

    meta = top.mapping("metadata", required=True)
    name: str | None = None
    namespace: str | None = None
    if meta is not None:
        name_check = _check_path_segment if group == RBAC_GROUP else formats.check_dns_subdomain
        name = meta.string("name", required=True, check=name_check)
        namespace = meta.string("namespace", check=formats.check_dns_label)
        labels = meta.string_map(
            "labels", check_key=formats.check_label_key, check_value=formats.check_label_value
        )
        meta.string_map(
            "annotations", check_key=formats.check_label_key, check_value=lambda v: None
        )
        _check_syncer_labels(meta, labels, head)
        for field in SERVER_FIELDS:
            if field in meta.node:
                report.warning(
                    doc.file,
                    key_line(meta.node, field),
                    f"metadata.{field} is set by the API server; remove it from Git",
                )
    if "status" in data:
        report.warning(doc.file, key_line(data, "status"), "status is ignored; remove it from Git")

    if group == names.MACHINE_API_GROUP and kind == "MachineSet":
        _check_machine_set(doc, report, head, name, namespace)
    elif group == "node.k8s.io" and kind == "RuntimeClass":
        top.string("handler", required=True, check=formats.check_dns_label)
    elif api_version == "v1" and kind == "ConfigMap" and name == names.BYOH_CONFIGMAP:
        _check_windows_instances(doc, report)

    try:
        body = to_plain(data)
    except UnsupportedValue as err:
        report.error(doc.file, doc.line, err.description)
        return None
    if report.errors != errors_before or name is None:
        return None
    return RawObject(api_version, kind, namespace, name, body, Source(doc.file, doc.line))


def _check_syncer_labels(meta: Fields, labels: dict[str, str], head: FleetHead | None) -> None:
    managed_by = labels.get(names.LABEL_MANAGED_BY)
    if managed_by is not None and managed_by != names.MANAGED_BY_VALUE:
        meta.report.error(
            meta.file,
            value_line(meta.node["labels"], names.LABEL_MANAGED_BY),
            f"metadata.labels.{names.LABEL_MANAGED_BY}: syncer sets it to "
            f"{names.MANAGED_BY_VALUE!r}; remove it or change it",
        )
    fleet = labels.get(names.LABEL_FLEET)
    if fleet is not None and head is not None and head.name and fleet != head.name:
        meta.report.error(
            meta.file,
            value_line(meta.node["labels"], names.LABEL_FLEET),
            f"metadata.labels.{names.LABEL_FLEET}: syncer sets it to the Fleet name "
            f"{head.name!r}; remove it or change it",
        )


def is_windows_machine_set(data: Any) -> bool:
    os_id, _, _ = _dig(data, "spec", "template", "metadata", "labels", names.LABEL_OS_ID)
    return bool(os_id == "Windows")


def _check_machine_set(
    doc: Document, report: Report, head: FleetHead | None, name: str | None, namespace: str | None
) -> None:
    data = doc.data
    if not is_windows_machine_set(data):
        return
    platform = head.platform if head else None
    file = doc.file
    if platform is Platform.NONE:
        report.error(
            file,
            doc.line,
            "a Windows MachineSet is not supported on platform none (BYOH only): "
            "list the hosts in BYOHHosts instead",
        )
    if namespace != names.MACHINE_API_NAMESPACE:
        report.error(
            file,
            value_line(data.get("metadata"), "namespace", doc.line),
            f"metadata.namespace: a MachineSet must be in {names.MACHINE_API_NAMESPACE}",
        )
    too_long = platforms.name_too_long(name, platform) if name is not None else None
    if too_long:
        report.error(
            file, value_line(data.get("metadata"), "name", doc.line), f"metadata.name: {too_long}"
        )
    secret, parent, key = _dig(
        data, "spec", "template", "spec", "providerSpec", "value", "userDataSecret", "name"
    )
    if secret != names.USER_DATA_SECRET:
        line = value_line(parent, key, doc.line) if parent is not None and key else doc.line
        got = f"{secret!r}" if isinstance(secret, str) else "missing"
        report.error(
            file,
            line,
            "spec.template.spec.providerSpec.value.userDataSecret.name: a Windows MachineSet "
            f"must use {names.USER_DATA_SECRET} (got {got})",
        )
    worker, _, _ = _dig(data, "spec", "template", "spec", "metadata", "labels")
    if not is_mapping(worker) or names.LABEL_WORKER_ROLE not in worker:
        report.warning(
            file,
            doc.line,
            f'Windows MachineSet without node label {names.LABEL_WORKER_ROLE}: "" '
            "(the product documentation sets it)",
        )
    cluster, labels, _ = _dig(data, "metadata", "labels", names.LABEL_CLUSTER_API_CLUSTER)
    infra = head.infrastructure_id if head else None
    if cluster is not None and infra and cluster != infra:
        report.warning(
            file,
            value_line(labels, names.LABEL_CLUSTER_API_CLUSTER, doc.line),
            f"label {names.LABEL_CLUSTER_API_CLUSTER} is {cluster!r}, but the Fleet's "
            f"infrastructureID is {infra!r}",
        )


def _check_windows_instances(doc: Document, report: Report) -> None:
    data = doc.data.get("data")
    report.warning(
        doc.file,
        doc.line,
        f"ConfigMap {names.BYOH_CONFIGMAP} written by hand; BYOHHosts renders it and checks more",
    )
    if data is None:
        return
    if not is_mapping(data):
        report.error(doc.file, value_line(doc.data, "data", doc.line), "data: must be a mapping")
        return
    for address, value in data.items():
        reason = formats.check_byoh_address(str(address))
        if reason:
            report.error(doc.file, key_line(data, address), f"data: address {address!r} {reason}")
        if not isinstance(value, str) or not value.startswith("username="):
            report.error(
                doc.file,
                value_line(data, address),
                f"data.{address}: must be exactly username=<user>, got {describe(value)}"
                if not isinstance(value, str)
                else f"data.{address}: must be exactly username=<user>, got {value!r}",
            )
            continue
        reason = formats.check_username(value[len("username=") :])
        if reason:
            report.error(doc.file, value_line(data, address), f"data.{address}: user name {reason}")
