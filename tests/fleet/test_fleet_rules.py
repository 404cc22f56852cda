"""Every validation rule of the fleet contract, each with a failing and a passing case.

A case is a small repository (``path -> YAML``; ``fleet.yaml`` holds a valid AWS Fleet
unless the case replaces it) and either the error it must produce, at its exact
``file:line`` (the line is found from a snippet of the file), or ``None``: the
repository is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from fleet_builders import (
    AWS_FIELDS,
    COMPONENTS,
    HOST_KEY,
    SHA_A,
    byoh,
    errors_of,
    fleet,
    host,
    line_of,
    machine_set,
    runtime_class,
)

WMCO_NS = "openshift-windows-machine-config-operator"


@dataclass(frozen=True)
class Expect:
    file: str
    snippet: str | None  # None: the problem has no line (line 0)
    fragment: str
    occurrence: int = 1


def case(name: str, files: dict[str, str], expect: Expect | None) -> pytest.ParameterSet:
    return pytest.param(files, expect, id=name)


def raw(kind: str, name: str, namespace: str | None = None, api: str = "v1", body: str = "") -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}{ns}\n{body}"


def raw_machine_set(
    name: str = "winraw",
    namespace: str = "openshift-machine-api",
    user_data: str = "windows-user-data",
    node_labels: str = '{node-role.kubernetes.io/worker: ""}',
) -> str:
    return f"""\
apiVersion: machine.openshift.io/v1beta1
kind: MachineSet
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{machine.openshift.io/cluster-api-cluster: prod-x7k2p}}
spec:
  replicas: 1
  template:
    metadata:
      labels: {{machine.openshift.io/os-id: Windows}}
    spec:
      metadata:
        labels: {node_labels}
      providerSpec:
        value:
          userDataSecret:
            name: {user_data}
"""


def with_fleet(files: dict[str, str], **fleet_args: object) -> dict[str, str]:
    return {"fleet.yaml": fleet(**fleet_args), **files}  # type: ignore[arg-type]


HOSTS = byoh(host("10.1.42.1"), host("win-build-7.example.com", "core"))

CASES = [
    # --- YAML syntax --------------------------------------------------------------------
    case(
        "yaml-syntax-error",
        with_fleet({"bad.yaml": "apiVersion: v1\nkind: a: b\n"}),
        Expect("bad.yaml", "kind: a: b", "YAML syntax error"),
    ),
    case(
        "yaml-duplicate-key",
        with_fleet({"bad.yaml": "apiVersion: v1\nkind: ConfigMap\nkind: Secret\n"}),
        Expect("bad.yaml", "kind: Secret", 'duplicate key "kind"'),
    ),
    case("yaml-valid", with_fleet({"hosts.yaml": HOSTS}), None),
    case(
        "document-not-a-mapping",
        with_fleet({"list.yaml": "- a\n- b\n"}),
        Expect("list.yaml", "- a", "must be a mapping"),
    ),
    # --- kinds ---------------------------------------------------------------------------
    case(
        "unknown-syncer-kind",
        with_fleet({"x.yaml": "apiVersion: syncer.io/v1alpha1\nkind: WindowsMachineSett\n"}),
        Expect("x.yaml", "apiVersion", "unknown kind 'WindowsMachineSett'"),
    ),
    case(
        "unknown-syncer-version",
        with_fleet({"x.yaml": runtime_class().replace("v1alpha1", "v1")}),
        Expect("x.yaml", "apiVersion", "unknown version 'syncer.io/v1'"),
    ),
    case(
        "compact-kind-without-syncer-api",
        with_fleet({"x.yaml": runtime_class().replace("syncer.io/v1alpha1", "v1")}),
        Expect("x.yaml", "apiVersion", "needs apiVersion: syncer.io/v1alpha1"),
    ),
    case("known-syncer-kinds", with_fleet({"rc.yaml": runtime_class(), "h.yaml": HOSTS}), None),
    # --- unknown fields --------------------------------------------------------------------
    case(
        "unknown-fleet-field",
        {"fleet.yaml": fleet(extra="  rollouts: {maxUnavailable: 2}\n")},
        Expect("fleet.yaml", "rollouts:", "spec.rollouts: unknown field (did you mean rollout?)"),
    ),
    case(
        "unknown-host-field",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", extra="user: x"))}),
        Expect("h.yaml", "10.0.0.1", "spec.hosts[0].user: unknown field (did you mean username?)"),
    ),
    case(
        "unknown-machineset-field",
        with_fleet({"m.yaml": machine_set(extra="  replica: 2\n")}),
        Expect("m.yaml", "replica: 2", "spec.replica: unknown field (did you mean replicas?)"),
    ),
    case(
        "unknown-runtimeclass-field",
        with_fleet({"rc.yaml": runtime_class() + "  handler: x\n"}),
        Expect("rc.yaml", "handler", "spec.handler: unknown field"),
    ),
    case(
        "unknown-top-level-field",
        with_fleet({"rc.yaml": runtime_class() + "status: {}\n"}),
        Expect("rc.yaml", "status", "status: unknown field"),
    ),
    case(
        "compact-metadata-namespace",
        with_fleet(
            {
                "rc.yaml": runtime_class().replace(
                    "  name: windows-2022", "  name: w\n  namespace: x"
                )
            }
        ),
        Expect("rc.yaml", "namespace: x", "compact kinds are not namespaced"),
    ),
    case(
        "known-fields",
        with_fleet(
            {
                "h.yaml": byoh(host("10.0.0.1", extra=f'hostKey: "{HOST_KEY}", labels: {{a: b}}')),
                "m.yaml": machine_set(extra="  labels: {example.com/pool: a}\n"),
            },
            extra="  rollout: {maxUnavailable: 2, drainTimeout: 5m, onFailure: rollback}\n"
            "  nodes: {sshPort: 2222, hostKeyPolicy: tofu, userData: wmco}\n"
            "  prune: {enabled: true, maxDeletions: 3}\n"
            "  status: {branch: syncer/status, notes: false, pullRequests: true}\n",
        ),
        None,
    ),
    # --- missing required fields ----------------------------------------------------------
    case(
        "fleet-missing-version",
        {"fleet.yaml": fleet(version=None)},
        Expect("fleet.yaml", "spec:", "spec.version: required field is missing"),
    ),
    case(
        "fleet-missing-platform",
        {"fleet.yaml": fleet().replace("  platform: aws\n", "")},
        Expect("fleet.yaml", "spec:", "spec.platform: required field is missing"),
    ),
    case(
        "fleet-missing-components",
        {"fleet.yaml": fleet(components="")},
        Expect("fleet.yaml", "spec:", "spec.components: required field is missing"),
    ),
    case(
        "fleet-missing-spec",
        {"fleet.yaml": "apiVersion: syncer.io/v1alpha1\nkind: Fleet\nmetadata: {name: a}\n"},
        Expect("fleet.yaml", "apiVersion", "spec: required field is missing"),
    ),
    case(
        "missing-metadata-name",
        with_fleet(
            {"rc.yaml": runtime_class().replace("  name: windows-2022\n", "  labels: {}\n")}
        ),
        Expect("rc.yaml", "metadata:", "metadata.name: required field is missing"),
    ),
    case(
        "machineset-missing-windows-server",
        with_fleet({"m.yaml": machine_set().replace('  windowsServer: "2022"\n', "")}),
        Expect("m.yaml", "spec:", "spec.windowsServer: required field is missing"),
    ),
    case(
        "machineset-missing-image",
        with_fleet({"m.yaml": machine_set(fields="zone: us-east-1a\n")}),
        Expect("m.yaml", "spec:", "spec.image: required field is missing"),
    ),
    case(
        "host-missing-username",
        with_fleet({"h.yaml": byoh("{address: 10.0.0.1}")}),
        Expect("h.yaml", "10.0.0.1", "spec.hosts[0].username: required field is missing"),
    ),
    case(
        "host-null-username",
        with_fleet({"h.yaml": byoh("{address: 10.0.0.1, username: }")}),
        Expect("h.yaml", "10.0.0.1", "spec.hosts[0].username: required field has no value"),
    ),
    case(
        "runtimeclass-missing-windows-server",
        with_fleet(
            {"rc.yaml": runtime_class().replace('spec:\n  windowsServer: "2022"\n', "spec: {}\n")}
        ),
        Expect("rc.yaml", "spec:", "spec.windowsServer: required field is missing"),
    ),
    case(
        "byoh-missing-hosts",
        with_fleet({"h.yaml": byoh().replace("spec:\n  hosts:\n", "spec: {}\n")}),
        Expect("h.yaml", "spec:", "spec.hosts: required field is missing"),
    ),
    case("required-fields-present", with_fleet({"m.yaml": machine_set(), "h.yaml": HOSTS}), None),
    # --- exactly one Fleet ------------------------------------------------------------------
    case("no-fleet", {"h.yaml": HOSTS}, Expect(".", None, "no Fleet found")),
    case(
        "two-fleets",
        with_fleet({"other/fleet.yaml": fleet(name="other")}),
        Expect("other/fleet.yaml", "apiVersion", "exactly one Fleet; the first is at fleet.yaml:1"),
    ),
    case("one-fleet", with_fleet({}), None),
    # --- BYOH addresses ---------------------------------------------------------------------
    case(
        "address-bad-ipv4",
        with_fleet({"h.yaml": byoh(host("10.1.42.300"))}),
        Expect("h.yaml", "10.1.42.300", "is not a valid IPv4 address"),
    ),
    case(
        "address-not-dns",
        with_fleet({"h.yaml": byoh(host("win_7.example.com"))}),
        Expect("h.yaml", "win_7", "neither an IPv4 address nor a valid DNS name"),
    ),
    case(
        "address-empty-label",
        with_fleet({"h.yaml": byoh(host("win..example.com"))}),
        Expect("h.yaml", "win..", "not a valid DNS name"),
    ),
    case(
        "address-ipv6",
        with_fleet({"h.yaml": byoh(host("fd00::42"))}),
        Expect("h.yaml", "fd00::42", "IPv6 address"),
    ),
    case(
        "address-host-name-not-rfc1123",
        with_fleet({"h.yaml": byoh(host("WIN-BUILD-7.example.com"))}),
        Expect("h.yaml", "WIN-BUILD-7", "host name 'WIN-BUILD-7' is not an RFC 1123 label"),
    ),
    case(
        "address-valid",
        with_fleet({"h.yaml": byoh(host("10.1.42.1"), host("win-build-7.Example.COM"))}),
        None,
    ),
    case(
        "duplicate-address-across-files",
        with_fleet(
            {
                "hosts/a.yaml": byoh(host("10.0.0.5")),
                "hosts/b.yaml": byoh(host("10.0.0.5"), name="b"),
            }
        ),
        Expect(
            "hosts/b.yaml", "10.0.0.5", "duplicate BYOH address 10.0.0.5: also at hosts/a.yaml:7"
        ),
    ),
    case(
        "duplicate-address-case-insensitive",
        with_fleet({"h.yaml": byoh(host("win-1.example.com"), host("win-1.EXAMPLE.com"))}),
        Expect("h.yaml", "win-1.EXAMPLE.com", "also at h.yaml:7"),
    ),
    case(
        "distinct-addresses",
        with_fleet(
            {
                "hosts/a.yaml": byoh(host("10.0.0.5")),
                "hosts/b.yaml": byoh(host("10.0.0.6"), name="b"),
            }
        ),
        None,
    ),
    # --- BYOH usernames ---------------------------------------------------------------------
    case(
        "username-empty",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", ""))}),
        Expect("h.yaml", "10.0.0.1", "username: '' must not be empty"),
    ),
    case(
        "username-with-equals",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", "admin=1"))}),
        Expect("h.yaml", "10.0.0.1", "must not contain '='"),
    ),
    case(
        "username-with-whitespace",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", "the admin"))}),
        Expect("h.yaml", "10.0.0.1", "must not contain whitespace"),
    ),
    case(
        "username-with-tab",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", "admin\\t"))}),
        Expect("h.yaml", "10.0.0.1", "must not contain whitespace"),
    ),
    case(
        "username-valid",
        with_fleet(
            {"h.yaml": byoh(host("10.0.0.1", "Administrator"), host("10.0.0.2", "CORP\\\\svc-win"))}
        ),
        None,
    ),
    # --- MachineSet names on azure and vsphere -------------------------------------------
    case(
        "azure-name-too-long",
        {"fleet.yaml": fleet("azure"), "m.yaml": machine_set("winworker1", "azure")},
        Expect("m.yaml", "name: winworker1", "at most 9"),
    ),
    case(
        "vsphere-name-too-long",
        {"fleet.yaml": fleet("vsphere"), "m.yaml": machine_set("windows-vm", "vsphere")},
        Expect("m.yaml", "name: windows-vm", "at most 9"),
    ),
    case(
        "azure-name-9-characters",
        {"fleet.yaml": fleet("azure"), "m.yaml": machine_set("winworker", "azure")},
        None,
    ),
    case(
        "aws-long-name",
        {"fleet.yaml": fleet("aws"), "m.yaml": machine_set("prod-x7k2p-windows-worker-us-east-1a")},
        None,
    ),
    case(
        "raw-machineset-name-too-long-on-vsphere",
        {"fleet.yaml": fleet("vsphere"), "m.yaml": raw_machine_set("windows-raw")},
        Expect("m.yaml", "name: windows-raw", "at most 9"),
    ),
    # --- Windows Server per platform ------------------------------------------------------
    *[
        case(
            f"{platform}-windows-{version}-unsupported",
            {"fleet.yaml": fleet(platform), "m.yaml": machine_set("win", platform, f'"{version}"')},
            Expect("m.yaml", "windowsServer", message),
        )
        for platform, version, message in (
            ("gcp", "2019", "Windows Server 2019 is not supported on gcp (supported: 2022)"),
            ("vsphere", "2019", "not supported on vsphere"),
            ("nutanix", "2019", "not supported on nutanix"),
            ("aws", "2025", "2025 is not supported for Windows MachineSets on any platform"),
            ("azure", "2025", "2025 is not supported"),
            ("aws", "2016", "must be one of 2019, 2022, 2025"),
        )
    ],
    *[
        case(
            f"{platform}-windows-{version}-supported",
            {"fleet.yaml": fleet(platform), "m.yaml": machine_set("win", platform, version)},
            None,
        )
        for platform, version in (
            ("aws", '"2019"'),
            ("aws", "2022"),
            ("azure", '"2019"'),
            ("gcp", '"2022"'),
            ("vsphere", '"2022"'),
            ("nutanix", '"2022"'),
        )
    ],
    # --- platform none ---------------------------------------------------------------------
    case(
        "machineset-on-platform-none",
        {"fleet.yaml": fleet("none", infra=None), "m.yaml": machine_set()},
        Expect("m.yaml", "apiVersion", "not supported on platform none (BYOH only)"),
    ),
    case(
        "raw-windows-machineset-on-platform-none",
        {"fleet.yaml": fleet("none", infra=None), "m.yaml": raw_machine_set()},
        Expect("m.yaml", "apiVersion", "not supported on platform none"),
    ),
    case("byoh-on-platform-none", {"fleet.yaml": fleet("none", infra=None), "h.yaml": HOSTS}, None),
    # --- sha256 and URLs ---------------------------------------------------------------------
    case(
        "sha256-malformed",
        {"fleet.yaml": fleet(components=COMPONENTS.replace(SHA_A, SHA_A[:-1] + "g"))},
        Expect("fleet.yaml", "sha256: 1db51", "must be exactly 64 hexadecimal characters"),
    ),
    case(
        "sha256-short",
        {"fleet.yaml": fleet(components=COMPONENTS.replace(SHA_A, "abc123"))},
        Expect("fleet.yaml", "abc123", "must be exactly 64 hexadecimal characters"),
    ),
    case(
        "sha256-uppercase",
        {"fleet.yaml": fleet(components=COMPONENTS.replace(SHA_A, SHA_A.upper()))},
        None,
    ),
    *[
        case(
            f"url-{name}",
            {
                "fleet.yaml": fleet(
                    components=COMPONENTS.replace("https://artifacts.example.com/kubelet.exe", url)
                )
            },
            Expect("fleet.yaml", "kubelet.exe" if "kubelet" in url else url.split()[0], fragment),
        )
        for name, url, fragment in (
            ("ftp", "ftp://artifacts.example.com/kubelet.exe", "scheme ftp:// is not supported"),
            (
                "no-scheme",
                "artifacts.example.com/kubelet.exe",
                "must be a URL starting with https://",
            ),
            ("no-host", "https:///kubelet.exe", "has no host"),
            (
                "credentials",
                "https://user:secret@artifacts.example.com/kubelet.exe",
                "must not contain credentials",
            ),
            ("file-relative", "file://kubelet.exe", "must name a local path"),
            ("bad-port", "https://artifacts.example.com:99999/kubelet.exe", "is not a valid URL"),
        )
    ],
    *[
        case(
            f"url-{name}-valid",
            {
                "fleet.yaml": fleet(
                    components=COMPONENTS.replace("https://artifacts.example.com/kubelet.exe", url)
                )
            },
            None,
        )
        for name, url in (
            ("https", "https://artifacts.example.com:8443/k/kubelet.exe"),
            ("http", "http://artifacts.example.com/kubelet.exe"),
            ("file", "file:///srv/payloads/kubelet.exe"),
        )
    ],
    # --- components -----------------------------------------------------------------------
    case(
        "unknown-component",
        {
            "fleet.yaml": fleet(
                components=COMPONENTS
                + "    kubelett: {version: v1, url: https://a.example.com/k, sha256: "
                + SHA_A
                + "}\n"
            )
        },
        Expect("fleet.yaml", "kubelett", "spec.components.kubelett: unknown component"),
    ),
    case(
        "required-component-missing",
        {"fleet.yaml": fleet(components=re.sub(r"    containerd:\n(      .*\n){3}", "",
                                                COMPONENTS))},
        Expect("fleet.yaml", "components:", "required component containerd is missing"),
    ),
    case(
        "component-missing-url",
        {
            "fleet.yaml": fleet(
                components=COMPONENTS.replace(
                    "      url: https://artifacts.example.com/kubelet.exe\n", ""
                )
            )
        },
        Expect("fleet.yaml", "kubelet:", "spec.components.kubelet.url: required field is missing"),
    ),
    case(
        "all-catalogue-components",
        {
            "fleet.yaml": fleet(
                components=COMPONENTS
                + "".join(
                    f"    {n}: {{version: v1.0.0, url: https://a.example.com/{n}, "
                    f"sha256: {SHA_A}}}\n"
                    for n in (
                        "kube-proxy",
                        "hybrid-overlay-node",
                        "hns",
                        "windows_exporter",
                        "csi-proxy",
                        "cloud-node-manager",
                    )
                )
            )
        },
        None,
    ),
    # --- rollout ----------------------------------------------------------------------------
    case(
        "max-unavailable-zero",
        {"fleet.yaml": fleet(extra="  rollout:\n    maxUnavailable: 0\n")},
        Expect(
            "fleet.yaml", "maxUnavailable", "spec.rollout.maxUnavailable: must be at least 1, got 0"
        ),
    ),
    case(
        "max-unavailable-string",
        {"fleet.yaml": fleet(extra='  rollout:\n    maxUnavailable: "25%"\n')},
        Expect("fleet.yaml", "maxUnavailable", "must be an integer, got a string"),
    ),
    case(
        "max-unavailable-one",
        {"fleet.yaml": fleet(extra="  rollout:\n    maxUnavailable: 1\n")},
        None,
    ),
    case(
        "drain-timeout-malformed",
        {"fleet.yaml": fleet(extra="  rollout:\n    drainTimeout: 10 minutes\n")},
        Expect("fleet.yaml", "drainTimeout", "is not a positive duration"),
    ),
    case(
        "drain-timeout-zero",
        {"fleet.yaml": fleet(extra="  rollout:\n    drainTimeout: 0s\n")},
        Expect("fleet.yaml", "drainTimeout", "is not a positive duration"),
    ),
    case(
        "drain-timeout-valid",
        {"fleet.yaml": fleet(extra="  rollout:\n    drainTimeout: 1h30m\n")},
        None,
    ),
    case(
        "on-failure-unknown",
        {"fleet.yaml": fleet(extra="  rollout:\n    onFailure: retry\n")},
        Expect("fleet.yaml", "onFailure", "must be one of halt, rollback, got 'retry'"),
    ),
    case(
        "paused-not-boolean",
        {"fleet.yaml": fleet(extra='  rollout:\n    paused: "yes"\n')},
        Expect("fleet.yaml", "paused", "must be true or false, got a string"),
    ),
    # --- nodes, prune, status ------------------------------------------------------------
    case(
        "ssh-port-out-of-range",
        {"fleet.yaml": fleet(extra="  nodes:\n    sshPort: 70000\n")},
        Expect("fleet.yaml", "sshPort", "must be at most 65535"),
    ),
    case(
        "host-key-policy-unknown",
        {"fleet.yaml": fleet(extra="  nodes:\n    hostKeyPolicy: always\n")},
        Expect("fleet.yaml", "hostKeyPolicy", "must be one of tofu, pinned"),
    ),
    case(
        "user-data-unknown",
        {"fleet.yaml": fleet(extra="  nodes:\n    userData: none\n")},
        Expect("fleet.yaml", "userData", "must be one of syncer, wmco"),
    ),
    case(
        "api-server-not-https",
        {"fleet.yaml": fleet(extra="  nodes:\n    apiServer: http://api.example.com:6443\n")},
        Expect("fleet.yaml", "apiServer", "must be an https:// URL"),
    ),
    case(
        "nodes-valid",
        {
            "fleet.yaml": fleet(
                extra="  nodes:\n    apiServer: https://api-int.example.com:6443\n"
                "    userData: wmco\n    serviceNetwork: 10.96.0.0/12\n"
                "    clusterDNS: 10.96.0.10\n    hybridOverlayVXLANPort: 9898\n"
            )
        },
        None,
    ),
    case(
        "service-network-not-a-cidr",
        {"fleet.yaml": fleet(extra="  nodes:\n    serviceNetwork: 10.96.0.0\n")},
        Expect("fleet.yaml", "serviceNetwork", "must be an IPv4 network like 172.30.0.0/16"),
    ),
    case(
        "cluster-dns-not-an-address",
        {"fleet.yaml": fleet(extra="  nodes:\n    clusterDNS: dns.example.com\n")},
        Expect("fleet.yaml", "clusterDNS", "must be an IPv4 address"),
    ),
    case(
        "vxlan-port-out-of-range",
        {"fleet.yaml": fleet(extra="  nodes:\n    hybridOverlayVXLANPort: 70000\n")},
        Expect("fleet.yaml", "hybridOverlayVXLANPort", "must be at most 65535"),
    ),
    case(
        "member-path-of-a-file-component",
        {"fleet.yaml": fleet(components=COMPONENTS.replace(
            "      url: https://artifacts.example.com/kubelet.exe\n",
            "      url: https://dl.k8s.io/v1.34.4/kubernetes-node-windows-amd64.tar.gz\n"
            "      path: kubernetes/node/bin/kubelet.exe\n"))},
        None,
    ),
    case(
        "member-path-escapes-the-archive",
        {"fleet.yaml": fleet(components=COMPONENTS.replace(
            "      url: https://artifacts.example.com/kubelet.exe\n",
            "      url: https://a.example.com/node.tar.gz\n      path: ../kubelet.exe\n"))},
        Expect("fleet.yaml", "path:", "must be the relative path of a file inside the archive"),
    ),
    case(
        "member-path-of-an-archive-component",
        {"fleet.yaml": fleet(components=COMPONENTS.replace(
            "      url: https://artifacts.example.com/containerd.tar.gz\n",
            "      url: https://a.example.com/c.tar.gz\n      path: bin/containerd.exe\n"))},
        Expect("fleet.yaml", "path:", "containerd is an archive expanded whole"),
    ),
    case(
        "kube-proxy-without-its-network",
        {"fleet.yaml": fleet(components=COMPONENTS + "    kube-proxy: {version: v1.30.4, "
                             f"url: https://a.example.com/kp.exe, sha256: {SHA_A}}}\n")},
        Expect("fleet.yaml", "kube-proxy:", "needs component hybrid-overlay-node as well"),
    ),
    case(
        "max-deletions-bad-percentage",
        {"fleet.yaml": fleet(extra='  prune:\n    maxDeletions: "250%"\n')},
        Expect("fleet.yaml", "maxDeletions", "must be a whole percentage"),
    ),
    case(
        "max-deletions-negative",
        {"fleet.yaml": fleet(extra="  prune:\n    maxDeletions: -1\n")},
        Expect("fleet.yaml", "maxDeletions", "must be at least 0"),
    ),
    case(
        "max-deletions-percentage",
        {"fleet.yaml": fleet(extra='  prune:\n    maxDeletions: "25%"\n')},
        None,
    ),
    case(
        "status-branch-invalid",
        {"fleet.yaml": fleet(extra='  status:\n    branch: "syncer status"\n')},
        Expect("fleet.yaml", "branch", "is not a valid Git branch name"),
    ),
    case(
        "status-notes-not-boolean",
        {"fleet.yaml": fleet(extra="  status:\n    notes: yes\n")},
        Expect("fleet.yaml", "notes", "must be true or false"),
    ),
    # --- Fleet identity -----------------------------------------------------------------------
    case(
        "platform-unknown",
        {"fleet.yaml": fleet("openstack")},
        Expect("fleet.yaml", "platform", "must be one of aws, azure, gcp, vsphere, nutanix, none"),
    ),
    case(
        "infrastructure-id-missing",
        {"fleet.yaml": fleet("aws", infra=None)},
        Expect("fleet.yaml", "spec:", "spec.infrastructureID: required on platform aws"),
    ),
    case(
        "infrastructure-id-invalid",
        {"fleet.yaml": fleet("aws", infra="Prod_X")},
        Expect("fleet.yaml", "infrastructureID", "must be an RFC 1123 label"),
    ),
    case("infrastructure-id-not-needed-on-none", {"fleet.yaml": fleet("none", infra=None)}, None),
    case(
        "namespace-invalid",
        {"fleet.yaml": fleet(extra="  namespace: WMCO\n")},
        Expect("fleet.yaml", "namespace", "must be an RFC 1123 label"),
    ),
    case(
        "version-not-a-string",
        {"fleet.yaml": fleet(version="1.4")},
        Expect("fleet.yaml", "version", 'must be a string, got a number (quote it: "1.4")'),
    ),
    case(
        "version-with-space",
        {"fleet.yaml": fleet(version='"1.4 beta"')},
        Expect("fleet.yaml", "version", "must be 1-63 characters"),
    ),
    case(
        "fleet-name-invalid",
        {"fleet.yaml": fleet(name="Prod")},
        Expect("fleet.yaml", "name: Prod", "must be an RFC 1123 label"),
    ),
    # --- host keys and labels --------------------------------------------------------------
    case(
        "host-key-truncated",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", extra='hostKey: "ssh-ed25519 AAAA"'))}),
        Expect("h.yaml", "10.0.0.1", "key data is truncated"),
    ),
    case(
        "host-key-unknown-type",
        with_fleet(
            {
                "h.yaml": byoh(
                    host(
                        "10.0.0.1", extra=f'hostKey: "{HOST_KEY.replace("ssh-ed25519", "ssh-dss")}"'
                    )
                )
            }
        ),
        Expect("h.yaml", "10.0.0.1", "unknown key type 'ssh-dss'"),
    ),
    case(
        "host-key-not-base64",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", extra='hostKey: "ssh-ed25519 not*base64"'))}),
        Expect("h.yaml", "10.0.0.1", "not valid base64"),
    ),
    case(
        "host-key-type-mismatch",
        with_fleet(
            {
                "h.yaml": byoh(
                    host(
                        "10.0.0.1", extra=f'hostKey: "{HOST_KEY.replace("ssh-ed25519", "ssh-rsa")}"'
                    )
                )
            }
        ),
        Expect("h.yaml", "10.0.0.1", "key data is not a ssh-rsa key"),
    ),
    case(
        "host-key-required-when-pinned",
        with_fleet({"h.yaml": byoh(host("10.0.0.1"))}, extra="  nodes: {hostKeyPolicy: pinned}\n"),
        Expect(
            "h.yaml",
            "10.0.0.1",
            "hostKey is required because the Fleet's nodes.hostKeyPolicy is pinned",
        ),
    ),
    case(
        "host-key-pinned",
        with_fleet(
            {"h.yaml": byoh(host("10.0.0.1", extra=f'hostKey: "{HOST_KEY} root@win"'))},
            extra="  nodes: {hostKeyPolicy: pinned}\n",
        ),
        None,
    ),
    case(
        "host-label-bad-key",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", extra='labels: {"bad key": x}'))}),
        Expect("h.yaml", "10.0.0.1", "labels.bad key: key name part must consist of"),
    ),
    case(
        "host-label-bad-value",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", extra="labels: {pool: -bad}"))}),
        Expect("h.yaml", "10.0.0.1", "labels.pool: value '-bad' must consist of"),
    ),
    case(
        "host-label-not-string",
        with_fleet({"h.yaml": byoh(host("10.0.0.1", extra="labels: {gpu: true}"))}),
        Expect("h.yaml", "10.0.0.1", "value must be a string, got a boolean (quote it)"),
    ),
    case(
        "host-label-valid",
        with_fleet(
            {
                "h.yaml": byoh(
                    host("10.0.0.1", extra='labels: {example.com/gpu: "true", pool: a.b_c-d}')
                )
            }
        ),
        None,
    ),
    # --- duplicates and collisions ----------------------------------------------------------
    case(
        "duplicate-raw-objects-across-files",
        with_fleet(
            {"a.yaml": raw("ConfigMap", "cfg", "apps"), "b/c.yaml": raw("ConfigMap", "cfg", "apps")}
        ),
        Expect(
            "b/c.yaml",
            "apiVersion",
            "duplicate object ConfigMap apps/cfg: also defined at a.yaml:1",
        ),
    ),
    case(
        "same-name-other-namespace",
        with_fleet(
            {"a.yaml": raw("ConfigMap", "cfg", "apps"), "b.yaml": raw("ConfigMap", "cfg", "web")}
        ),
        None,
    ),
    case(
        "same-name-other-kind",
        with_fleet(
            {"a.yaml": raw("ConfigMap", "cfg", "apps"), "b.yaml": raw("Secret", "cfg", "apps")}
        ),
        None,
    ),
    case(
        "duplicate-windows-machine-sets",
        with_fleet({"m/a.yaml": machine_set("win"), "m/b.yaml": machine_set("win")}),
        Expect(
            "m/b.yaml", "apiVersion", "duplicate WindowsMachineSet win: also defined at m/a.yaml:1"
        ),
    ),
    case(
        "duplicate-runtime-classes",
        with_fleet({"rc.yaml": runtime_class("w") + "---\n" + runtime_class("w", '"2019"')}),
        Expect(
            "rc.yaml", "apiVersion", "duplicate WindowsRuntimeClass w: also defined at rc.yaml:1", 2
        ),
    ),
    case(
        "duplicate-byoh-documents",
        with_fleet({"a.yaml": byoh(host("10.0.0.1")), "b.yaml": byoh(host("10.0.0.2"))}),
        Expect("b.yaml", "apiVersion", "duplicate BYOHHosts lab: also defined at a.yaml:1"),
    ),
    case(
        "raw-windows-instances-next-to-byoh",
        with_fleet({"h.yaml": HOSTS, "z.yaml": raw("ConfigMap", "windows-instances", WMCO_NS)}),
        Expect(
            "z.yaml",
            "apiVersion",
            f"duplicate object ConfigMap {WMCO_NS}/windows-instances: also rendered from "
            "BYOHHosts at h.yaml:1",
        ),
    ),
    case(
        "raw-syncer-fleet-configmap",
        with_fleet({"z.yaml": raw("ConfigMap", "syncer-fleet", WMCO_NS)}),
        Expect("z.yaml", "apiVersion", "also rendered from the Fleet at fleet.yaml:1"),
    ),
    case(
        "raw-machineset-named-like-compact",
        with_fleet({"m.yaml": machine_set("win"), "r.yaml": raw_machine_set("win")}),
        Expect("r.yaml", "apiVersion", "also rendered from WindowsMachineSet win at m.yaml:1"),
    ),
    case(
        "raw-runtimeclass-named-like-compact",
        with_fleet(
            {
                "rc.yaml": runtime_class("w"),
                "r.yaml": raw(
                    "RuntimeClass", "w", api="node.k8s.io/v1", body="handler: runhcs-wcow-process\n"
                ),
            }
        ),
        Expect(
            "r.yaml",
            "apiVersion",
            "duplicate object RuntimeClass w: also rendered from WindowsRuntimeClass w",
        ),
    ),
    # --- pass-through objects ---------------------------------------------------------------
    case(
        "raw-missing-api-version",
        with_fleet({"r.yaml": "kind: ConfigMap\nmetadata: {name: a}\n"}),
        Expect("r.yaml", "kind", "apiVersion is missing"),
    ),
    case(
        "raw-missing-kind",
        with_fleet({"r.yaml": "apiVersion: v1\nmetadata: {name: a}\n"}),
        Expect("r.yaml", "apiVersion", "kind is missing"),
    ),
    case(
        "raw-missing-name",
        with_fleet({"r.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: a}\n"}),
        Expect("r.yaml", "metadata", "metadata.name: required field is missing"),
    ),
    case(
        "raw-missing-metadata",
        with_fleet({"r.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: {}\n"}),
        Expect("r.yaml", "apiVersion", "metadata: required field is missing"),
    ),
    case(
        "raw-name-not-dns-subdomain",
        with_fleet({"r.yaml": raw("ConfigMap", "Bad_Name", "apps")}),
        Expect("r.yaml", "Bad_Name", "must be a DNS subdomain name"),
    ),
    case(
        "raw-namespace-invalid",
        with_fleet({"r.yaml": raw("ConfigMap", "a", "apps.prod")}),
        Expect("r.yaml", "apps.prod", "must be an RFC 1123 label"),
    ),
    case(
        "raw-rbac-name-with-colons",
        with_fleet(
            {
                "r.yaml": raw(
                    "ClusterRole", "system:windows:reader", api="rbac.authorization.k8s.io/v1"
                )
            }
        ),
        # The name is fine; the kind is not in the default pass-through allow-list.
        Expect("r.yaml", "apiVersion",
               "kind ClusterRole.rbac.authorization.k8s.io may not pass through"),
    ),
    case(
        "raw-label-invalid",
        with_fleet(
            {
                "r.yaml": raw("ConfigMap", "a", "apps").replace(
                    "  namespace: apps", "  namespace: apps\n  labels: {tier: 'front end'}"
                )
            }
        ),
        Expect("r.yaml", "labels", "labels.tier: value 'front end' must consist of"),
    ),
    case(
        "raw-managed-by-other-tool",
        with_fleet(
            {
                "r.yaml": raw("ConfigMap", "a", "apps").replace(
                    "  namespace: apps",
                    "  namespace: apps\n  labels: {app.kubernetes.io/managed-by: argocd}",
                )
            }
        ),
        Expect("r.yaml", "labels", "syncer sets it to 'syncer'"),
    ),
    case(
        "raw-other-fleet-label",
        with_fleet(
            {
                "r.yaml": raw("ConfigMap", "a", "apps").replace(
                    "  namespace: apps", "  namespace: apps\n  labels: {syncer.io/fleet: other}"
                )
            }
        ),
        Expect("r.yaml", "labels", "syncer sets it to the Fleet name 'prod'"),
    ),
    case(
        "raw-own-fleet-label",
        with_fleet(
            {
                "r.yaml": raw("ConfigMap", "a", "apps").replace(
                    "  namespace: apps",
                    "  namespace: apps\n"
                    "  labels: {syncer.io/fleet: prod, app.kubernetes.io/managed-by: syncer}",
                )
            }
        ),
        None,
    ),
    case(
        "raw-custom-tag",
        with_fleet({"r.yaml": raw("ConfigMap", "a", "apps", body="data:\n  x: !vault secret\n")}),
        Expect("r.yaml", "x: !vault", "custom YAML tag !vault is not supported"),
    ),
    case(
        "raw-list",
        with_fleet({"r.yaml": "apiVersion: v1\nkind: List\nitems: []\n"}),
        Expect("r.yaml", "apiVersion", "write each object as its own YAML document"),
    ),
    case(
        "raw-kustomization",
        with_fleet(
            {
                "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\n"
                "kind: Kustomization\nresources: []\n"
            }
        ),
        Expect("kustomization.yaml", "apiVersion", "syncer does not run kustomize"),
    ),
    case(
        "raw-windows-machineset-wrong-user-data",
        with_fleet({"r.yaml": raw_machine_set(user_data="worker-user-data")}),
        Expect("r.yaml", "worker-user-data", "must use windows-user-data (got 'worker-user-data')"),
    ),
    case(
        "raw-windows-machineset-wrong-namespace",
        with_fleet({"r.yaml": raw_machine_set(namespace="default")}),
        Expect("r.yaml", "namespace: default", "a MachineSet must be in openshift-machine-api"),
    ),
    case("raw-windows-machineset-valid", with_fleet({"r.yaml": raw_machine_set()}), None),
    case(
        "raw-linux-machineset-refused",
        with_fleet(
            {
                "r.yaml": raw_machine_set(user_data="worker-user-data").replace(
                    "os-id: Windows", "os-id: Linux"
                )
            }
        ),
        Expect("r.yaml", "apiVersion", "only Windows MachineSets"),
    ),
    case(
        "raw-runtimeclass-without-handler",
        with_fleet({"r.yaml": raw("RuntimeClass", "w", api="node.k8s.io/v1")}),
        Expect("r.yaml", "apiVersion", "handler: required field is missing"),
    ),
    case(
        "raw-runtimeclass-with-handler",
        with_fleet(
            {
                "r.yaml": raw(
                    "RuntimeClass", "w", api="node.k8s.io/v1", body="handler: runhcs-wcow-process\n"
                )
            }
        ),
        None,
    ),
    case(
        "raw-windows-instances-bad-format",
        with_fleet(
            {
                "r.yaml": raw(
                    "ConfigMap", "windows-instances", WMCO_NS, body="data:\n  10.0.0.1: user=core\n"
                )
            }
        ),
        Expect("r.yaml", "10.0.0.1", "must be exactly username=<user>, got 'user=core'"),
    ),
    case(
        "raw-windows-instances-bad-address",
        with_fleet(
            {
                "r.yaml": raw(
                    "ConfigMap",
                    "windows-instances",
                    WMCO_NS,
                    body="data:\n  fd00::1: username=core\n",
                )
            }
        ),
        Expect("r.yaml", "fd00::1", "IPv6"),
    ),
    case(
        "raw-windows-instances-valid",
        with_fleet(
            {
                "r.yaml": raw(
                    "ConfigMap",
                    "windows-instances",
                    WMCO_NS,
                    body="data:\n  10.0.0.1: username=core\n",
                )
            }
        ),
        None,
    ),
    # --- platform fields ----------------------------------------------------------------------
    case(
        "field-of-another-platform",
        with_fleet({"m.yaml": machine_set(extra="  location: centralus\n")}),
        Expect("m.yaml", "location", "spec.location: field of platform azure, not of aws"),
    ),
    case(
        "image-on-vsphere",
        {
            "fleet.yaml": fleet("vsphere"),
            "m.yaml": machine_set("win", "vsphere", extra="  image: x\n"),
        },
        Expect("m.yaml", "image: x", "on vsphere the VM image is the template field"),
    ),
    case(
        "region-on-azure",
        {
            "fleet.yaml": fleet("azure"),
            "m.yaml": machine_set("win", "azure", extra="  region: westeurope\n"),
        },
        Expect("m.yaml", "region", "on azure the region is the location field"),
    ),
    case(
        "aws-zone-not-in-region",
        with_fleet({"m.yaml": machine_set(extra="  region: us-west-2\n")}),
        Expect("m.yaml", "zone:", "zone 'us-east-1a' is not in region 'us-west-2'"),
    ),
    case(
        "gcp-zone-underivable",
        {
            "fleet.yaml": fleet("gcp"),
            "m.yaml": machine_set(
                "win", "gcp", fields=("zone: central\n  projectID: p\n  image: img\n")
            ),
        },
        Expect("m.yaml", "zone:", "cannot derive the region from zone 'central'; set region"),
    ),
    case(
        "aws-ami-malformed",
        with_fleet({"m.yaml": machine_set(fields="zone: us-east-1a\n  image: ami-xyz\n")}),
        Expect("m.yaml", "ami-xyz", "is not an AMI ID"),
    ),
    case(
        "nutanix-memory-malformed",
        {
            "fleet.yaml": fleet("nutanix"),
            "m.yaml": machine_set("win", "nutanix", extra="  memorySize: 16GB\n"),
        },
        Expect("m.yaml", "16GB", "must be a size like 16Gi"),
    ),
    case(
        "nutanix-boot-type-unknown",
        {
            "fleet.yaml": fleet("nutanix"),
            "m.yaml": machine_set("win", "nutanix", extra="  bootType: BIOS\n"),
        },
        Expect("m.yaml", "BIOS", "must be one of Legacy, UEFI, SecureBoot"),
    ),
    case(
        "replicas-negative",
        with_fleet({"m.yaml": machine_set().replace("replicas: 1", "replicas: -1")}),
        Expect("m.yaml", "replicas", "must be at least 0"),
    ),
    case(
        "provider-override-not-mapping",
        with_fleet({"m.yaml": machine_set(extra="  providerSpec: [a]\n")}),
        Expect("m.yaml", "providerSpec", "must be a mapping"),
    ),
    case(
        "provider-override-user-data",
        with_fleet(
            {
                "m.yaml": machine_set(
                    extra="  providerSpec: {userDataSecret: {name: worker-user-data}}\n"
                )
            }
        ),
        Expect("m.yaml", "providerSpec", "userDataSecret must stay windows-user-data"),
    ),
    case(
        "provider-override-valid",
        with_fleet(
            {
                "m.yaml": machine_set(
                    extra="  providerSpec:\n"
                    "    metadataServiceOptions: {authentication: Required}\n"
                    "    tags: null\n"
                )
            }
        ),
        None,
    ),
    case(
        "azure-image-unknown-field",
        {
            "fleet.yaml": fleet("azure"),
            "m.yaml": machine_set("win", "azure", extra="  image: {skew: x}\n"),
        },
        Expect("m.yaml", "skew", "spec.image.skew: unknown field (did you mean sku?)"),
    ),
    # --- RuntimeClass -----------------------------------------------------------------------
    case(
        "runtimeclass-unknown-release",
        with_fleet({"rc.yaml": runtime_class("w", '"2016"')}),
        Expect("rc.yaml", "windowsServer", "must be 2019, 2022, 2025 or a build number"),
    ),
    case("runtimeclass-2025", with_fleet({"rc.yaml": runtime_class("w", '"2025"')}), None),
    case(
        "runtimeclass-build-number", with_fleet({"rc.yaml": runtime_class("w", "10.0.20348")}), None
    ),
    case(
        "runtimeclass-name-invalid",
        with_fleet({"rc.yaml": runtime_class("Windows_2022")}),
        Expect("rc.yaml", "Windows_2022", "must be a DNS subdomain name"),
    ),
]


@pytest.mark.parametrize(("files", "expect"), CASES)
def test_rule(tmp_path: Path, files: dict[str, str], expect: Expect | None) -> None:
    errors = errors_of(tmp_path, files)
    if expect is None:
        assert errors == [], "\n".join(map(str, errors))
        return
    line = (
        line_of(files[expect.file], expect.snippet, expect.occurrence)
        if expect.snippet is not None
        else 0
    )
    matching = [p for p in errors if p.file == expect.file and expect.fragment in p.message]
    assert matching, f"no error containing {expect.fragment!r} in:\n" + "\n".join(map(str, errors))
    assert line in [p.line for p in matching], f"expected {expect.file}:{line}, got " + ", ".join(
        f"{p.file}:{p.line}" for p in matching
    )


def test_all_errors_at_once(tmp_path: Path) -> None:
    """Errors in several documents and files are all reported in one run, sorted."""
    files = {
        "fleet.yaml": fleet(extra="  rollout: {maxUnavailable: 0}\n"),
        "hosts/a.yaml": byoh(host("10.1.42.300"), host("fd00::1"), host("10.0.0.1", "a=b")),
        "machinesets/m.yaml": machine_set("win", windows_server='"2025"'),
        "rc.yaml": runtime_class("w", '"2016"'),
    }
    errors = errors_of(tmp_path, files)
    assert len(errors) == 6, "\n".join(map(str, errors))
    assert [(p.file, p.line) for p in errors] == sorted((p.file, p.line) for p in errors)
    assert {p.file for p in errors} == set(files)


def test_aws_fields_builder_is_valid(tmp_path: Path) -> None:
    assert "zone" in AWS_FIELDS
    assert errors_of(tmp_path, with_fleet({"m.yaml": machine_set()})) == []
