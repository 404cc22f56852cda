"""Names shared with WMCO, OpenShift and between syncer's own stages.

WMCO's names are fixed by compatibility (see ../shared/reference/wmco.md): users move
between WMCO and syncer, so the ConfigMap, Secret, label and annotation names below must
stay exactly as WMCO spells them. syncer's own names use the ``syncer.io`` prefix.
"""

from __future__ import annotations

# --- syncer's API group and identity -------------------------------------------------
API_VERSION = "syncer.io/v1alpha1"
FIELD_MANAGER = "syncer"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"  # value: "syncer"
MANAGED_BY_VALUE = "syncer"
LABEL_FLEET = "syncer.io/fleet"  # value: the Fleet's metadata.name
# Per-object opt-out of pruning (Flux: kustomize.toolkit.fluxcd.io/prune: disabled).
ANNOTATION_PRUNE = "syncer.io/prune"
PRUNE_DISABLED = "disabled"

# ConfigMap (in the fleet namespace) that carries what the node stage needs from the Fleet:
# version, components, rollout and node policy, BYOH extras. Layout: README, "Fleet ConfigMap".
FLEET_CONFIGMAP = "syncer-fleet"

# --- OpenShift / machine API ---------------------------------------------------------
MACHINE_API_NAMESPACE = "openshift-machine-api"
MACHINE_API_GROUP = "machine.openshift.io"
MACHINE_API_VERSION = "machine.openshift.io/v1beta1"
LABEL_CLUSTER_API_CLUSTER = "machine.openshift.io/cluster-api-cluster"
LABEL_CLUSTER_API_MACHINESET = "machine.openshift.io/cluster-api-machineset"
LABEL_CLUSTER_API_MACHINE_ROLE = "machine.openshift.io/cluster-api-machine-role"
LABEL_CLUSTER_API_MACHINE_TYPE = "machine.openshift.io/cluster-api-machine-type"
LABEL_OS_ID = "machine.openshift.io/os-id"  # value: "Windows"
LABEL_WORKER_ROLE = "node-role.kubernetes.io/worker"

# --- WMCO ----------------------------------------------------------------------------
WMCO_NAMESPACE = "openshift-windows-machine-config-operator"
BYOH_CONFIGMAP = "windows-instances"
PRIVATE_KEY_SECRET = "cloud-private-key"
PRIVATE_KEY_SECRET_KEY = "private-key.pem"
USER_DATA_SECRET = "windows-user-data"
USER_DATA_SECRET_KEY = "userData"
SSH_HOST_KEYS_CONFIGMAP = "windows-ssh-host-keys"

WMCO_PREFIX = "windowsmachineconfig.openshift.io/"
ANNOTATION_VERSION = WMCO_PREFIX + "version"
ANNOTATION_DESIRED_VERSION = WMCO_PREFIX + "desired-version"
ANNOTATION_REBOOT_REQUIRED = WMCO_PREFIX + "reboot-required"
ANNOTATION_PUB_KEY_HASH = WMCO_PREFIX + "pub-key-hash"
ANNOTATION_USERNAME = WMCO_PREFIX + "username"
ANNOTATION_SSH_HOST_KEY = WMCO_PREFIX + "ssh-host-key"
ANNOTATION_SSH_HOST_KEY_TYPE = WMCO_PREFIX + "ssh-host-key-type"
LABEL_BYOH = WMCO_PREFIX + "byoh"
LABEL_UPGRADING = WMCO_PREFIX + "upgrading"
LABEL_IGNORE = WMCO_PREFIX + "ignore"

LABEL_OS = "kubernetes.io/os"
LABEL_WINDOWS_BUILD = "node.kubernetes.io/windows-build"
LABEL_NODE_OS_ID = "node.openshift.io/os_id"

# Windows Server release -> the build label the kubelet reports.
WINDOWS_BUILDS: dict[str, str] = {
    "2019": "10.0.17763",
    "2022": "10.0.20348",
    "2025": "10.0.26100",
}

RUNTIME_HANDLER = "runhcs-wcow-process"
WINDOWS_TAINT_KEY = "os"
WINDOWS_TAINT_VALUE = "Windows"
