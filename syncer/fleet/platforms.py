"""Per-platform facts: compact MachineSet fields, Windows Server support, providerSpec.

Each platform the machine API supports gets one :class:`PlatformSpec`: the compact
``WindowsMachineSet`` fields it accepts (with type, default and check), the Windows
Server releases it supports, the longest MachineSet name it allows, and a function that
builds the ``providerSpec.value`` exactly like the product documentation's Windows
MachineSet example for that platform (section 6.x; WMCO's ``docs/machineset-*.md``).
Names the examples derive from the infrastructure ID (IAM profile, security group,
subnet, resource group, vnet, network, service account, VM folder) are derived the same
way; anything else can be set with the ``providerSpec`` override, a JSON merge patch.

Fields are listed once per platform; a field of another platform is rejected with a
message naming the platform it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from syncer import names
from syncer.fleet import formats
from syncer.fleet.model import Platform

# Windows Server releases whose MachineSets each platform supports (product docs 2.3.2).
# Platform none has no machine API: it takes BYOH hosts only (2019 and 2022).
WINDOWS_SERVERS: dict[Platform, tuple[str, ...]] = {
    Platform.AWS: ("2019", "2022"),
    Platform.AZURE: ("2019", "2022"),
    Platform.GCP: ("2022",),
    Platform.VSPHERE: ("2022",),
    Platform.NUTANIX: ("2022",),
    Platform.NONE: ("2019", "2022"),
}

# Azure and vSphere Windows machine names are limited to 15 characters; machine names are
# the MachineSet name plus "-" and 5 random characters.
MAX_NAME_LENGTH: dict[Platform, int] = {Platform.AZURE: 9, Platform.VSPHERE: 9}


def name_too_long(name: str, platform: Platform | None) -> str | None:
    """Why ``name`` is too long for a Windows MachineSet on ``platform``, or None."""
    limit = MAX_NAME_LENGTH.get(platform) if platform is not None else None
    if limit is None or len(name) <= limit:
        return None
    return (
        f"{name!r} is {len(name)} characters; on {platform} a Windows MachineSet name may be "
        f"at most {limit} (Windows machine names are limited to 15 characters)"
    )


AZURE_IMAGE_SKUS = {"2019": "2019-Datacenter-with-Containers", "2022": "2022-datacenter-smalldisk"}

_AWS_REGION_RE = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+")
_GCP_ZONE_RE = re.compile(r"([a-z]+-[a-z]+[0-9]+)-[a-z]")
_AMI_RE = re.compile(r"ami-([0-9a-f]{8}|[0-9a-f]{17})")
_QUANTITY_RE = re.compile(r"[1-9][0-9]*(Mi|Gi|Ti)")


def _check_ami(value: str) -> str | None:
    if not _AMI_RE.fullmatch(value):
        return "is not an AMI ID (ami- followed by 8 or 17 hex digits)"
    return None


def _check_quantity(value: str) -> str | None:
    if not _QUANTITY_RE.fullmatch(value):
        return "must be a size like 16Gi (a whole number with Mi, Gi or Ti)"
    return None


@dataclass(frozen=True)
class FieldSpec:
    """One compact WindowsMachineSet field of a platform."""

    name: str
    kind: str  # "string" | "integer" | "azure-image"
    doc: str
    required: bool = False
    default: Any = None  # None: no default (optional fields are then left out)
    check: Callable[[str], str | None] | None = None
    choices: tuple[str, ...] = ()
    minimum: int = 1


@dataclass(frozen=True)
class PlatformSpec:
    platform: Platform
    fields: tuple[FieldSpec, ...]
    provider_spec: Callable[[str, str, dict[str, Any]], dict[str, Any]]


def _credentials(name: str) -> FieldSpec:
    return FieldSpec(
        "credentialsSecret",
        "string",
        "name of the Secret in openshift-machine-api with the cloud credentials",
        default=name,
        check=formats.check_dns_subdomain,
    )


def _user_data(namespaced: bool) -> dict[str, str]:
    secret = {"name": names.USER_DATA_SECRET}
    if namespaced:
        secret["namespace"] = names.MACHINE_API_NAMESPACE
    return secret


def _nutanix_ref(value: str) -> dict[str, str]:
    if formats.is_uuid(value):
        return {"type": "uuid", "uuid": value}
    return {"type": "name", "name": value}


# --- providerSpec builders (one per platform, after the product documentation) --------
def _aws(infra: str, windows_server: str, f: dict[str, Any]) -> dict[str, Any]:
    zone = f["zone"]
    return {
        "ami": {"id": f["image"]},
        "apiVersion": names.MACHINE_API_VERSION,
        "blockDevices": [
            {"ebs": {"iops": 0, "volumeSize": f["volumeSize"], "volumeType": f["volumeType"]}}
        ],
        "credentialsSecret": {"name": f["credentialsSecret"]},
        "deviceIndex": 0,
        "iamInstanceProfile": {"id": f"{infra}-worker-profile"},
        "instanceType": f["instanceType"],
        "kind": "AWSMachineProviderConfig",
        "placement": {"availabilityZone": zone, "region": f["region"]},
        "securityGroups": [{"filters": [{"name": "tag:Name", "values": [f"{infra}-worker-sg"]}]}],
        "subnet": {"filters": [{"name": "tag:Name", "values": [f"{infra}-private-{zone}"]}]},
        "tags": [{"name": f"kubernetes.io/cluster/{infra}", "value": "owned"}],
        # AWSMachineProviderConfig.userDataSecret is a LocalObjectReference (name only).
        "userDataSecret": _user_data(namespaced=False),
    }


def _azure(infra: str, windows_server: str, f: dict[str, Any]) -> dict[str, Any]:
    image = {
        "offer": "WindowsServer",
        "publisher": "MicrosoftWindowsServer",
        "resourceID": "",
        "sku": AZURE_IMAGE_SKUS[windows_server],
        "version": "latest",
    }
    image.update(f.get("image") or {})
    spec: dict[str, Any] = {
        "apiVersion": names.MACHINE_API_VERSION,
        "credentialsSecret": {
            "name": f["credentialsSecret"],
            "namespace": names.MACHINE_API_NAMESPACE,
        },
        "image": image,
        "kind": "AzureMachineProviderSpec",
        "location": f["location"],
        "managedIdentity": f"{infra}-identity",
        "networkResourceGroup": f"{infra}-rg",
        "osDisk": {
            "diskSizeGB": f["osDiskSizeGB"],
            "managedDisk": {"storageAccountType": "Premium_LRS"},
            "osType": "Windows",
        },
        "publicIP": False,
        "resourceGroup": f"{infra}-rg",
        "subnet": f"{infra}-worker-subnet",
        "userDataSecret": _user_data(namespaced=True),
        "vmSize": f["instanceType"],
        "vnet": f"{infra}-vnet",
    }
    if f.get("zone") is not None:
        spec["zone"] = f["zone"]
    return spec


def _gcp(infra: str, windows_server: str, f: dict[str, Any]) -> dict[str, Any]:
    project = f["projectID"]
    return {
        "apiVersion": names.MACHINE_API_VERSION,
        "canIPForward": False,
        "credentialsSecret": {"name": f["credentialsSecret"]},
        "deletionProtection": False,
        "disks": [
            {
                "autoDelete": True,
                "boot": True,
                "image": f["image"],
                "sizeGb": f["diskSizeGB"],
                "type": f["diskType"],
            }
        ],
        "kind": "GCPMachineProviderSpec",
        "machineType": f["instanceType"],
        "networkInterfaces": [
            {"network": f"{infra}-network", "subnetwork": f"{infra}-worker-subnet"}
        ],
        "projectID": project,
        "region": f["region"],
        "serviceAccounts": [
            {
                "email": f"{infra}-w@{project}.iam.gserviceaccount.com",
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
        ],
        "tags": [f"{infra}-worker"],
        "userDataSecret": _user_data(namespaced=False),
        "zone": f["zone"],
    }


def _vsphere(infra: str, windows_server: str, f: dict[str, Any]) -> dict[str, Any]:
    workspace = {
        "datacenter": f["datacenter"],
        "datastore": f["datastore"],
        "folder": f.get("folder") or f"/{f['datacenter']}/vm/{infra}",
        "server": f["server"],
    }
    if f.get("resourcePool"):
        workspace["resourcePool"] = f["resourcePool"]
    return {
        "apiVersion": names.MACHINE_API_VERSION,
        "credentialsSecret": {"name": f["credentialsSecret"]},
        "diskGiB": f["diskGiB"],
        "kind": "VSphereMachineProviderSpec",
        "memoryMiB": f["memoryMiB"],
        "network": {"devices": [{"networkName": f["network"]}]},
        "numCPUs": f["numCPUs"],
        "numCoresPerSocket": f["numCoresPerSocket"],
        "snapshot": "",
        "template": f["template"],
        "userDataSecret": _user_data(namespaced=False),
        "workspace": workspace,
    }


def _nutanix(infra: str, windows_server: str, f: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "machine.openshift.io/v1",
        "bootType": f["bootType"],
        "cluster": _nutanix_ref(f["cluster"]),
        "credentialsSecret": {"name": f["credentialsSecret"]},
        "image": _nutanix_ref(f["image"]),
        "kind": "NutanixMachineProviderConfig",
        "memorySize": f["memorySize"],
        "subnets": [_nutanix_ref(f["subnet"])],
        "systemDiskSize": f["systemDiskSize"],
        "userDataSecret": _user_data(namespaced=False),
        "vcpuSockets": f["vcpuSockets"],
        "vcpusPerSocket": f["vcpusPerSocket"],
    }


PLATFORMS: dict[Platform, PlatformSpec] = {
    Platform.AWS: PlatformSpec(
        Platform.AWS,
        (
            FieldSpec(
                "image", "string", "AMI ID of a Windows Server image", True, check=_check_ami
            ),
            FieldSpec("zone", "string", "availability zone, e.g. us-east-1a", True),
            FieldSpec("region", "string", "AWS region (default: derived from zone)"),
            FieldSpec("instanceType", "string", "EC2 instance type", default="m5a.large"),
            FieldSpec("volumeSize", "integer", "root volume size in GiB", default=120),
            FieldSpec("volumeType", "string", "EBS volume type", default="gp2"),
            _credentials("aws-cloud-credentials"),
        ),
        _aws,
    ),
    Platform.AZURE: PlatformSpec(
        Platform.AZURE,
        (
            FieldSpec("location", "string", "Azure location (region), e.g. centralus", True),
            FieldSpec("zone", "string", 'availability zone, e.g. "1" (default: none)'),
            FieldSpec(
                "image",
                "azure-image",
                "marketplace image: publisher, offer, sku, version, resourceID "
                "(default: MicrosoftWindowsServer WindowsServer, sku by windowsServer, latest)",
            ),
            FieldSpec("instanceType", "string", "VM size (vmSize)", default="Standard_D2s_v3"),
            FieldSpec("osDiskSizeGB", "integer", "OS disk size in GB", default=128),
            _credentials("azure-cloud-credentials"),
        ),
        _azure,
    ),
    Platform.GCP: PlatformSpec(
        Platform.GCP,
        (
            FieldSpec(
                "image",
                "string",
                "full path of a Windows Server image, e.g. "
                "projects/windows-cloud/global/images/family/windows-2022-core",
                True,
            ),
            FieldSpec("projectID", "string", "GCP project of the cluster", True),
            FieldSpec("zone", "string", "zone, e.g. us-central1-a", True),
            FieldSpec("region", "string", "region (default: derived from zone)"),
            FieldSpec("instanceType", "string", "machine type", default="n1-standard-4"),
            FieldSpec("diskSizeGB", "integer", "boot disk size in GB", default=128),
            FieldSpec("diskType", "string", "boot disk type", default="pd-ssd"),
            _credentials("gcp-cloud-credentials"),
        ),
        _gcp,
    ),
    Platform.VSPHERE: PlatformSpec(
        Platform.VSPHERE,
        (
            FieldSpec(
                "template",
                "string",
                "the powered-off Windows golden image VM template, never the original VM",
                True,
            ),
            FieldSpec("server", "string", "vCenter server IP or FQDN", True),
            FieldSpec("datacenter", "string", "vCenter datacenter", True),
            FieldSpec("datastore", "string", "vCenter datastore", True),
            FieldSpec(
                "folder", "string", "VM folder path (default: /<datacenter>/vm/<infrastructureID>)"
            ),
            FieldSpec("resourcePool", "string", "resource pool path (default: none)"),
            FieldSpec("network", "string", "VM network of the cluster's Linux workers", True),
            FieldSpec("numCPUs", "integer", "number of vCPUs", default=4),
            FieldSpec("numCoresPerSocket", "integer", "cores per socket", default=1),
            FieldSpec("memoryMiB", "integer", "memory in MiB", default=16384),
            FieldSpec("diskGiB", "integer", "disk size in GiB", default=128),
            _credentials("vsphere-cloud-credentials"),
        ),
        _vsphere,
    ),
    Platform.NUTANIX: PlatformSpec(
        Platform.NUTANIX,
        (
            FieldSpec("image", "string", "image name or UUID in Prism", True),
            FieldSpec("cluster", "string", "Prism Element cluster name or UUID", True),
            FieldSpec("subnet", "string", "subnet name or UUID", True),
            FieldSpec("vcpuSockets", "integer", "number of vCPU sockets", default=4),
            FieldSpec("vcpusPerSocket", "integer", "vCPUs per socket", default=1),
            FieldSpec("memorySize", "string", "memory", default="16Gi", check=_check_quantity),
            FieldSpec(
                "systemDiskSize",
                "string",
                "system disk size",
                default="120Gi",
                check=_check_quantity,
            ),
            FieldSpec(
                "bootType",
                "string",
                "boot type (Legacy is required on OpenShift 4.14)",
                default="Legacy",
                choices=("Legacy", "UEFI", "SecureBoot"),
            ),
            _credentials("nutanix-credentials"),
        ),
        _nutanix,
    ),
}

# Which platforms a field name belongs to, for "field x belongs to platform y" messages.
FIELD_PLATFORMS: dict[str, tuple[str, ...]] = {}
for _spec in PLATFORMS.values():
    for _field in _spec.fields:
        FIELD_PLATFORMS[_field.name] = (*FIELD_PLATFORMS.get(_field.name, ()), _spec.platform.value)


def aws_region_from_zone(zone: str) -> str | None:
    match = _AWS_REGION_RE.match(zone)
    return match.group(0) if match else None


def gcp_region_from_zone(zone: str) -> str | None:
    match = _GCP_ZONE_RE.fullmatch(zone)
    return match.group(1) if match else None
