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
# version, components, rollout and node policy, BYOH extras. Layout: docs/fleet-repository.md.
FLEET_CONFIGMAP = "syncer-fleet"

# --- the controller (syncer run; its namespace is SYSTEM_NAMESPACE below) ---------------
LEADER_LEASE = "syncer-leader"
# On the leader Lease: the version of the replica that holds it (`syncer version`).
ANNOTATION_CONTROLLER_VERSION = "syncer.io/controller-version"
# ConfigMap in the controller namespace an operator (or `syncer suspend/resume/reconcile`)
# edits: data.suspend "true" stops reconciles; the annotation below asks for one now
# (Flux: reconcile.fluxcd.io/requestedAt); the controller answers in the handled-at one.
CONTROL_CONFIGMAP = "syncer-control"
CONTROL_SUSPEND_KEY = "suspend"
ANNOTATION_RECONCILE_REQUESTED_AT = "syncer.io/reconcile-requested-at"
ANNOTATION_RECONCILE_HANDLED_AT = "syncer.io/last-handled-reconcile-at"

# The WindowsFleet resource (manifests/base/crd/): one fleet's Git source for `syncer run` and
# its status (kstatus conditions, revisions, hosts). "Reconcile now" is an annotation on
# it, spelled as Flux's reconcile.fluxcd.io/requestedAt.
FLEET_RESOURCE_GROUP = "syncer.io"
FLEET_RESOURCE_VERSION = "v1alpha1"
FLEET_RESOURCE_KIND = "WindowsFleet"
FLEET_RESOURCE_PLURAL = "windowsfleets"
ANNOTATION_REQUESTED_AT = "reconcile.syncer.io/requestedAt"

# --- apply engine (syncer/cluster/) -----------------------------------------------------
# The controller's own namespace, and the ConfigMap there that records what syncer applied
# (inventory, Flux-style ids) and the last applied / attempted revision.
SYSTEM_NAMESPACE = "syncer-system"
INVENTORY_CONFIGMAP = "syncer-inventory"
# Set on the inventory ConfigMap to the SHA of a revision whose prune the guard refused,
# to let the controller go ahead (the CLI's --confirm-prune).
ANNOTATION_CONFIRM_PRUNE = "syncer.io/confirm-prune"

# --- write-back to Git (syncer/writeback/status/writer.py) ------------------------------
# The branch only syncer commits to (status.yaml + STATUS.md) and the notes ref on applied
# source commits. Commits on the status branch carry these trailers.
STATUS_BRANCH = "syncer/status"
NOTES_REF = "refs/notes/syncer"
TRAILER_SOURCE = "Syncer-Source"
TRAILER_STATE = "Syncer-State"
TRAILER_ENTRY = "Syncer-Entry"

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

# --- syncer's node records (syncer/nodes/) ---------------------------------------------
# Node annotations syncer writes next to WMCO's (see syncer/nodes/annotations.py).
SYNCER_PREFIX = "syncer.io/"
# JSON: name -> {"version", "sha256", "url"} of what is installed ("url" optional).
ANNOTATION_COMPONENTS = SYNCER_PREFIX + "components"
ANNOTATION_PHASE = SYNCER_PREFIX + "phase"  # the host state machine's current step
# Values of ANNOTATION_PHASE besides the step names: where a host's state machine rests.
PHASE_CONFIGURED = "configured"
PHASE_FAILED = "failed"
PHASE_ROLLED_BACK = "rolled-back"
PHASE_DECONFIGURED = "deconfigured"
PHASE_DECONFIGURE_FAILED = "deconfigure-failed"
PHASES_AT_REST = frozenset(
    {PHASE_CONFIGURED, PHASE_FAILED, PHASE_ROLLED_BACK, PHASE_DECONFIGURED}
)
ANNOTATION_FAILED_STEP = SYNCER_PREFIX + "failed-step"  # present while the host is failed
ANNOTATION_LAST_ERROR = SYNCER_PREFIX + "last-error"
ANNOTATION_SINCE = SYNCER_PREFIX + "since"  # RFC 3339 time the phase/failure began
# The address (windows-instances key or Machine InternalIP) syncer configured the Node from;
# syncer's own "I configured this Node" marker, used to find removed hosts.
ANNOTATION_ADDRESS = SYNCER_PREFIX + "address"
# In the fleet namespace: failure records of hosts that have no Node yet (key = address),
# the rollout lock (Lease; annotation ANNOTATION_SLOT_HOLDERS holds the slot holders).
HOST_STATE_CONFIGMAP = "syncer-host-state"
ROLLOUT_LEASE = "syncer-rollout"
ANNOTATION_SLOT_HOLDERS = SYNCER_PREFIX + "slot-holders"
# The host's default shell as the probe detected it (WMCO's Get-Help test): "cmd" or
# "powershell"; remembered so a no-change pass needs one command per host.
ANNOTATION_SHELL = SYNCER_PREFIX + "shell"
# In the fleet namespace: the node stage's last report (one row per host, rollout
# progress), what `syncer status` prints. Written only when it changes.
NODE_STATUS_CONFIGMAP = "syncer-node-status"
# ServiceAccount whose TokenRequest token bootstraps a new host's kubelet.
NODE_BOOTSTRAPPER_SERVICE_ACCOUNT = "syncer-node-bootstrapper"
NODE_BOOTSTRAPPER_CLUSTER_ROLE = "system:node-bootstrapper"
# Mirror pods (static pods) carry this annotation; drain skips them like kubectl does.
ANNOTATION_MIRROR_POD = "kubernetes.io/config.mirror"

RUNTIME_HANDLER = "runhcs-wcow-process"
WINDOWS_TAINT_KEY = "os"
WINDOWS_TAINT_VALUE = "Windows"
