"""Reading the compact ``syncer.io/v1alpha1`` kinds into the typed model.

One function per kind turns a loaded document into its dataclass, checking every field
(type, format, allowed values, unknown fields) and reporting problems at the line of
the offending key or value. A document with errors yields ``None`` (or, for the Fleet,
only what the other kinds need to be checked: name, platform, infrastructure ID), so a
broken document never reaches rendering but the rest of the fleet is still checked.

Rules that involve more than one document (exactly one Fleet, duplicates, collisions,
pinned host keys) are in :mod:`syncer.fleet.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from syncer import components, durations, names
from syncer.components import PayloadKind
from syncer.fleet import formats, platforms
from syncer.fleet.fields import Fields, Report
from syncer.fleet.loading import Document
from syncer.fleet.model import (
    BYOHHost,
    ComponentSpec,
    Fleet,
    HostKeyPolicy,
    NodePolicy,
    OnFailure,
    Platform,
    PrunePolicy,
    Rollout,
    Source,
    StatusPolicy,
    UserDataMode,
    WindowsMachineSet,
    WindowsRuntimeClass,
)
from syncer.fleet.yamlnodes import (
    UnsupportedValue,
    is_int,
    is_mapping,
    item_line,
    key_line,
    to_plain,
    value_line,
)

FLEET = "Fleet"
WINDOWS_MACHINE_SET = "WindowsMachineSet"
BYOH_HOSTS = "BYOHHosts"
WINDOWS_RUNTIME_CLASS = "WindowsRuntimeClass"
COMPACT_KINDS = (FLEET, WINDOWS_MACHINE_SET, BYOH_HOSTS, WINDOWS_RUNTIME_CLASS)

RELEASES = tuple(names.WINDOWS_BUILDS)  # "2019", "2022", "2025"


@dataclass
class FleetHead:
    """What the other kinds need from the Fleet, even when the Fleet has errors."""

    name: str | None
    platform: Platform | None
    infrastructure_id: str | None
    fleet: Fleet | None  # the whole Fleet, when it has no errors
    source: Source
    namespace: str = names.WMCO_NAMESPACE
    rollout_line: int = 0  # line of spec.rollout.maxUnavailable (or of spec)
    host_key_policy: HostKeyPolicy = HostKeyPolicy.TOFU


@dataclass
class BYOHDocument:
    name: str | None
    hosts: list[BYOHHost]  # the hosts without errors
    source: Source
    # Every well-formed address with its line, including hosts with other errors, so
    # duplicates are reported at once rather than after the first fix.
    addresses: list[tuple[str, int]] = field(default_factory=list)


def _head(
    doc: Document, report: Report, metadata_fields: tuple[str, ...]
) -> tuple[Fields, Fields | None, str | None, dict[str, str], dict[str, str]]:
    """Read apiVersion, kind and metadata of a compact document; return the top reader."""
    top = Fields(report, doc.file, doc.data)
    top.raw("apiVersion")
    top.raw("kind")
    meta = top.mapping("metadata", required=True)
    name: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if meta is not None:
        check = (
            formats.check_dns_label
            if doc.data.get("kind") in (FLEET, WINDOWS_MACHINE_SET)
            else formats.check_dns_subdomain
        )
        name = meta.string("name", required=True, check=check)
        if "labels" in metadata_fields:
            labels = meta.string_map(
                "labels", check_key=formats.check_label_key, check_value=formats.check_label_value
            )
        if "annotations" in metadata_fields:
            annotations = meta.string_map(
                "annotations", check_key=formats.check_label_key, check_value=lambda v: None
            )
        meta.finish(lambda k: "compact kinds are not namespaced" if k == "namespace" else None)
    spec = top.mapping("spec", required=True)
    return top, spec, name, labels, annotations


# --- Fleet ------------------------------------------------------------------------
def read_fleet(doc: Document, report: Report) -> FleetHead:
    errors_before = report.errors
    source = Source(doc.file, doc.line)
    top, spec, name, _, _ = _head(doc, report, ())
    top.finish()
    if spec is None:
        return FleetHead(name, None, None, None, source)

    platform_name = spec.choice("platform", [p.value for p in Platform], required=True)
    platform = Platform(platform_name) if platform_name else None
    infra = spec.string("infrastructureID", check=formats.check_dns_label)
    if infra is None and platform not in (None, Platform.NONE) and not spec.has("infrastructureID"):
        report.error(
            doc.file,
            spec.line,
            f"spec.infrastructureID: required on platform {platform} (oc get -o "
            "jsonpath='{.status.infrastructureName}' infrastructure cluster)",
        )
    namespace = spec.string(
        "namespace", default=names.WMCO_NAMESPACE, check=formats.check_dns_label
    )
    version = spec.string("version", required=True, check=formats.check_version)
    comps = _components(spec)
    rollout = _rollout(spec.mapping("rollout"))
    nodes = _nodes(spec.mapping("nodes"))
    prune = _prune(spec.mapping("prune"))
    status = _status(spec.mapping("status"))
    spec.finish()

    fleet: Fleet | None = None
    if report.errors == errors_before:
        assert name is not None and platform is not None and namespace and version
        fleet = Fleet(
            name=name,
            platform=platform,
            infrastructure_id=infra,
            namespace=namespace,
            version=version,
            components=comps,
            rollout=rollout,
            nodes=nodes,
            prune=prune,
            status=status,
            source=source,
        )
    rollout_node = spec.node.get("rollout")
    rollout_line = (
        Fields(report, doc.file, rollout_node).line_of("maxUnavailable")
        if is_mapping(rollout_node)
        else spec.line
    )
    return FleetHead(
        name,
        platform,
        infra,
        fleet,
        source,
        namespace or names.WMCO_NAMESPACE,
        rollout_line,
        nodes.host_key_policy,
    )


def _components(spec: Fields) -> dict[str, ComponentSpec]:
    section = spec.mapping("components", required=True)
    if section is None:
        return {}
    result: dict[str, ComponentSpec] = {}
    for key in list(section.node):
        section.raw(key)
        name = str(key)
        if name not in components.CATALOGUE:
            known = ", ".join(sorted(components.CATALOGUE))
            section.report.error(
                section.file,
                key_line(section.node, key),
                f"{section.path}{name}: unknown component (known: {known})",
            )
            continue
        entry = section.mapping(name)
        if entry is None:
            if not section.has(name):
                section.error(name, "must be a mapping with version, url and sha256")
            continue
        version = entry.string("version", required=True, check=formats.check_version)
        url = entry.string("url", required=True, check=formats.check_payload_url,
                           shown=formats.shown_url)
        sha256 = entry.string("sha256", required=True, check=formats.check_sha256)
        member = entry.string("path", check=formats.check_archive_member)
        entry.finish()
        if member is not None and components.CATALOGUE[name].kind is not PayloadKind.FILE:
            entry.error("path", f"{name} is an archive expanded whole; path picks one file "
                        "out of an archive for a file component")
            member = None
        if url is not None and url.lower().startswith("http://"):
            entry.warning(
                "url", "payload is downloaded over plain http (the sha256 is still verified)"
            )
        if version and url and sha256:
            result[name] = ComponentSpec(version, url, sha256.lower(), member)
    for required in components.REQUIRED:
        if required not in section.node:
            section.error(None, f"required component {required} is missing")
    for name in result:
        for companion in components.CATALOGUE[name].requires:
            if companion not in section.node:
                section.report.error(
                    section.file, key_line(section.node, name),
                    f"{section.path}{name}: needs component {companion} as well",
                )
    kubelet, kube_proxy = result.get("kubelet"), result.get("kube-proxy")
    if kubelet and kube_proxy and kubelet.version != kube_proxy.version:
        section.report.warning(
            section.file,
            value_line(section.node["kube-proxy"], "version"),
            f"{section.path}kube-proxy.version: {kube_proxy.version} differs from the "
            f"kubelet's {kubelet.version}; they are released together",
        )
    return dict(sorted(result.items()))


def _rollout(f: Fields | None) -> Rollout:
    if f is None:
        return Rollout()
    max_unavailable = f.integer("maxUnavailable", default=1, minimum=1)
    drain_timeout = f.string("drainTimeout", default="10m")
    seconds = 600.0
    if drain_timeout is not None:
        parsed = durations.seconds(drain_timeout)
        if parsed is None or parsed <= 0:
            f.error(
                "drainTimeout",
                f"{drain_timeout!r} is not a positive duration like 10m, 90s or 1h30m",
            )
        else:
            seconds = parsed
    on_failure = f.choice("onFailure", [o.value for o in OnFailure], default="halt")
    paused = f.boolean("paused", default=False)
    if paused:
        f.warning("paused", "rollout is paused: no Windows host will be changed")
    f.finish()
    return Rollout(
        max_unavailable=max_unavailable or 1,
        drain_timeout=drain_timeout or "10m",
        drain_timeout_seconds=seconds,
        on_failure=OnFailure(on_failure or "halt"),
        paused=paused,
    )


def _nodes(f: Fields | None) -> NodePolicy:
    if f is None:
        return NodePolicy()
    port = f.integer("sshPort", default=22, minimum=1, maximum=65535)
    policy = f.choice("hostKeyPolicy", [p.value for p in HostKeyPolicy], default="tofu")
    user_data = f.choice("userData", [u.value for u in UserDataMode], default="syncer")
    api_server = f.string("apiServer", check=formats.check_https_url)
    service_network = f.string("serviceNetwork", check=formats.check_ipv4_cidr)
    cluster_dns = f.string("clusterDNS", check=formats.check_ipv4)
    vxlan_port = f.integer("hybridOverlayVXLANPort", minimum=1, maximum=65535)
    f.finish()
    return NodePolicy(
        ssh_port=port or 22,
        host_key_policy=HostKeyPolicy(policy or "tofu"),
        user_data=UserDataMode(user_data or "syncer"),
        api_server=api_server,
        service_network=service_network,
        cluster_dns=cluster_dns,
        vxlan_port=vxlan_port,
    )


def _prune(f: Fields | None) -> PrunePolicy:
    if f is None:
        return PrunePolicy()
    enabled = f.boolean("enabled", default=True)
    raw = f.raw("maxDeletions")
    max_deletions: int | str | None = None
    if raw is not None:
        if is_int(raw):
            max_deletions = f.integer("maxDeletions", minimum=0)
        else:
            max_deletions = f.string("maxDeletions", check=formats.check_percentage)
    f.finish()
    return PrunePolicy(enabled=enabled, max_deletions=max_deletions)


def _status(f: Fields | None) -> StatusPolicy:
    if f is None:
        return StatusPolicy()
    branch = f.string("branch", default="syncer/status", check=formats.check_git_branch)
    notes = f.boolean("notes", default=True)
    pull_requests = f.boolean("pullRequests", default=True)
    f.finish()
    return StatusPolicy(branch=branch or "syncer/status", notes=notes, pull_requests=pull_requests)


# --- WindowsMachineSet ----------------------------------------------------------------
def _windows_server(f: Fields, platform: Platform | None) -> str | None:
    value = f.string("windowsServer", required=True, allow_int=True)
    if value is None:
        return None
    if value not in RELEASES:
        f.error("windowsServer", f"must be one of {', '.join(RELEASES)}, got {value!r}")
        return None
    if value == "2025":
        f.error(
            "windowsServer",
            "Windows Server 2025 is not supported for Windows MachineSets on any platform",
        )
        return None
    if platform is not None and value not in platforms.WINDOWS_SERVERS[platform]:
        supported = " and ".join(platforms.WINDOWS_SERVERS[platform])
        f.error(
            "windowsServer",
            f"Windows Server {value} is not supported on {platform} (supported: {supported})",
        )
        return None
    return value


def read_machine_set(
    doc: Document, report: Report, head: FleetHead | None
) -> WindowsMachineSet | None:
    errors_before = report.errors
    platform = head.platform if head else None
    top, spec, name, labels, annotations = _head(doc, report, ("labels", "annotations"))
    top.finish()
    too_long = platforms.name_too_long(name, platform) if name is not None else None
    if too_long:
        report.error(
            doc.file,
            key_line(doc.data.get("metadata"), "name", doc.line),
            f"metadata.name: {too_long}",
        )
    if platform is Platform.NONE:
        report.error(
            doc.file,
            doc.line,
            "WindowsMachineSet is not supported on platform none (BYOH only): "
            "list the hosts in BYOHHosts instead",
        )
    if spec is None:
        return None

    replicas = spec.integer("replicas", default=1, minimum=0)
    windows_server = _windows_server(spec, platform)
    node_labels = spec.string_map(
        "labels", check_key=formats.check_label_key, check_value=formats.check_label_value
    )
    override = _provider_override(spec)
    fields: dict[str, Any] = {}
    if platform is None or platform is Platform.NONE:
        for key in spec.node:  # cannot check platform fields without a platform
            spec.raw(key)
    else:
        fields = _platform_fields(spec, platforms.PLATFORMS[platform])
    spec.finish(lambda key: _foreign_field(key, platform))
    if report.errors != errors_before or windows_server is None or name is None:
        return None
    return WindowsMachineSet(
        name=name,
        replicas=replicas if replicas is not None else 1,
        windows_server=windows_server,
        fields=fields,
        node_labels=node_labels,
        labels=labels,
        annotations=annotations,
        provider_spec=override,
        source=Source(doc.file, doc.line),
    )


def _foreign_field(key: str, platform: Platform | None) -> str | None:
    owners = platforms.FIELD_PLATFORMS.get(key)
    if not owners or platform is None:
        return None
    hint = ""
    if platform is Platform.VSPHERE and key == "image":
        hint = " (on vsphere the VM image is the template field)"
    elif platform is Platform.AZURE and key == "region":
        hint = " (on azure the region is the location field)"
    return f"field of platform {', '.join(owners)}, not of {platform}{hint}"


def _provider_override(spec: Fields) -> dict[str, Any]:
    raw = spec.raw("providerSpec")
    if raw is None:
        return {}
    if not is_mapping(raw):
        spec.error("providerSpec", "must be a mapping (merged into providerSpec.value)")
        return {}
    try:
        override: dict[str, Any] = to_plain(raw)
    except UnsupportedValue as err:
        spec.error("providerSpec", err.description)
        return {}
    user_data = override.get("userDataSecret")
    if isinstance(user_data, dict) and user_data.get("name", names.USER_DATA_SECRET) != (
        names.USER_DATA_SECRET
    ):
        spec.error(
            "providerSpec",
            f"userDataSecret must stay {names.USER_DATA_SECRET} (WMCO configures only "
            "machines that boot with it)",
        )
    return override


def _platform_fields(spec: Fields, pspec: platforms.PlatformSpec) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for fs in pspec.fields:
        value: Any
        if fs.kind == "integer":
            value = spec.integer(
                fs.name, required=fs.required, default=fs.default, minimum=fs.minimum
            )
        elif fs.kind == "azure-image":
            value = _azure_image(spec.mapping(fs.name))
        elif fs.choices:
            value = spec.choice(fs.name, fs.choices, default=fs.default, required=fs.required)
        else:
            value = spec.string(
                fs.name, required=fs.required, default=fs.default, check=fs.check, allow_int=True
            )
        if value is not None:
            values[fs.name] = value
    _derive_region(spec, pspec.platform, values)
    return values


def _azure_image(f: Fields | None) -> dict[str, str] | None:
    if f is None:
        return None
    image: dict[str, str] = {}
    for key in ("publisher", "offer", "sku", "version"):
        value = f.string(key)
        if value is not None:
            image[key] = value
    resource_id = f.string("resourceID", allow_empty=True)
    if resource_id is not None:
        image["resourceID"] = resource_id
    f.finish()
    return image


def _derive_region(spec: Fields, platform: Platform, values: dict[str, Any]) -> None:
    if platform not in (Platform.AWS, Platform.GCP) or "zone" not in values:
        return
    zone = values["zone"]
    derived = (
        platforms.aws_region_from_zone(zone)
        if platform is Platform.AWS
        else platforms.gcp_region_from_zone(zone)
    )
    region = values.get("region")
    if region is None:
        if derived is None:
            spec.error("zone", f"cannot derive the region from zone {zone!r}; set region")
        else:
            values["region"] = derived
    elif not zone.startswith(region + ("" if platform is Platform.AWS else "-")):
        spec.error("zone", f"zone {zone!r} is not in region {region!r}")


# --- BYOHHosts ------------------------------------------------------------------------
def read_byoh_hosts(doc: Document, report: Report) -> BYOHDocument:
    top, spec, name, _, _ = _head(doc, report, ())
    top.finish()
    source = Source(doc.file, doc.line)
    hosts: list[BYOHHost] = []
    addresses: list[tuple[str, int]] = []
    if spec is None:
        return BYOHDocument(name, hosts, source)
    items = spec.sequence("hosts", required=True)
    spec.finish()
    if items is None:
        return BYOHDocument(name, hosts, source)
    if not items:
        spec.warning("hosts", "the host list is empty")
    file = doc.file
    check_address = formats.check_byoh_address
    check_username = formats.check_username
    check_host_key = formats.check_host_key
    check_label_key = formats.check_label_key
    check_label_value = formats.check_label_value
    for index, item in enumerate(items):
        line = item_line(items, index, spec.line)
        if not is_mapping(item):
            report.error(
                file, line, f"spec.hosts[{index}]: must be a mapping with address and username"
            )
            continue
        h = Fields(report, file, item, f"spec.hosts[{index}].")
        errors_before = report.errors
        address = h.string("address", required=True, check=check_address)
        username = h.string("username", required=True, allow_empty=True, check=check_username)
        host_key = h.string("hostKey", check=check_host_key)
        labels = (
            h.string_map("labels", check_key=check_label_key, check_value=check_label_value)
            if "labels" in item
            else {}
        )
        h.finish()
        if address is not None:
            addresses.append((address, line))
            if report.errors == errors_before and username is not None:
                hosts.append(BYOHHost(address, username, host_key, labels, file, line))
    return BYOHDocument(name, hosts, source, addresses)


# --- WindowsRuntimeClass --------------------------------------------------------------
def read_runtime_class(doc: Document, report: Report) -> WindowsRuntimeClass | None:
    errors_before = report.errors
    top, spec, name, labels, annotations = _head(doc, report, ("labels", "annotations"))
    top.finish()
    if spec is None:
        return None
    value = spec.string("windowsServer", required=True, allow_int=True)
    build: str | None = None
    if value is not None:
        if value in names.WINDOWS_BUILDS:
            build = names.WINDOWS_BUILDS[value]
        elif formats.is_windows_build(value):
            build = value
            if value not in names.WINDOWS_BUILDS.values():
                spec.warning(
                    "windowsServer",
                    f"build {value} is not a Windows Server LTSC release syncer knows "
                    f"({', '.join(f'{k} = {v}' for k, v in names.WINDOWS_BUILDS.items())})",
                )
        else:
            spec.error(
                "windowsServer",
                f"must be 2019, 2022, 2025 or a build number like 10.0.20348, got {value!r}",
            )
    spec.finish()
    if report.errors != errors_before or name is None or value is None or build is None:
        return None
    return WindowsRuntimeClass(name, value, build, labels, annotations, Source(doc.file, doc.line))
