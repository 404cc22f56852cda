"""Image registry mirrors for containerd, from the cluster's mirror sets, as WMCO writes them.

A disconnected or mirrored OpenShift cluster lists its mirrors in
``ImageDigestMirrorSet`` and ``ImageTagMirrorSet`` objects (config.openshift.io/v1,
cluster-scoped). containerd reads one ``hosts.toml`` per source registry from
``C:\\k\\containerd\\registries\\<registry>\\hosts.toml`` (the ``config_path`` of
:func:`syncer.nodes.windows.files.containerd_config`) at every pull, so nothing restarts
when they change. WMCO's rules (``pkg/registries/registries.go``), followed here:

- the source is reduced to its registry host (containerd has no per-path registries);
  a mirror keeps only what differs from the source at the end (containerd appends the
  shared namespaces when it pulls), unless mirror and source are the same;
- entries for one source are merged over all mirror sets; a mirror that may resolve tags
  (ITMS) wins over a digest-only one (IDMS); ``NeverContactSource`` wins over
  ``AllowContactingSource`` and makes the first mirror the fallback ``server``;
- mirrors and sources are sorted, so the files are the same bytes for the same input;
- a mirror with credentials in the global pull secret (``openshift-config/pull-secret``)
  gets ``authorization = "Basic …"`` as a request header.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from syncer.cluster.client import ApiError, KubeClient

DIGEST_SETS = "/apis/config.openshift.io/v1/imagedigestmirrorsets"
TAG_SETS = "/apis/config.openshift.io/v1/imagetagmirrorsets"
PULL_SECRET = "/api/v1/namespaces/openshift-config/secrets/pull-secret"
NEVER_CONTACT_SOURCE = "NeverContactSource"


@dataclass(frozen=True)
class Mirror:
    host: str  # registry host, maybe with a namespace path
    resolve_tags: bool


@dataclass(frozen=True)
class MirrorSet:
    source: str  # the registry host
    mirrors: tuple[Mirror, ...]
    never_contact_source: bool


def registry_host(image: str) -> str:
    """``mcr.microsoft.com/oss/kubernetes/pause:3.9`` -> ``mcr.microsoft.com``."""
    if "://" in image:
        parts = urlsplit(image)
        if parts.hostname:
            return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return image.split("/", 1)[0]


def _org_path(location: str) -> str:
    host = registry_host(location)
    _, _, rest = location.partition(host)
    return rest.lstrip("/")


def _mirror_location(source: str, mirror: str) -> str:
    """The mirror without the trailing path elements it shares with the source."""
    if source == mirror:
        return registry_host(mirror)
    src, dst = source.split("/"), mirror.split("/")
    keep = list(dst)
    for i in range(min(len(src), len(dst))):
        if src[-1 - i] != dst[-1 - i]:
            break
        keep.pop()
    return "/".join(keep)


def merge(entries: Iterable[tuple[str, list[str], bool, bool]]) -> list[MirrorSet]:
    """(source, mirrors, resolve tags, never contact source) entries -> one set per
    registry, merged and sorted."""
    merged: dict[str, tuple[dict[str, Mirror], bool]] = {}
    for source, mirrors, tags, never in entries:
        registry = registry_host(source)
        known, was_never = merged.get(registry, ({}, False))
        for location in mirrors:
            m = Mirror(_mirror_location(source, location), tags)
            old = known.get(m.host)
            if old is None or (tags and not old.resolve_tags):
                known[m.host] = m
        merged[registry] = (known, was_never or never)
    return [MirrorSet(source, tuple(known[h] for h in sorted(known)), never)
            for source, (known, never) in sorted(merged.items())]


def _v2(location: str) -> str:
    path = _org_path(location)
    return f"https://{registry_host(location)}/v2" + (f"/{path}" if path else "")


def hosts_toml(mirror_set: MirrorSet, auths: Mapping[str, str]) -> bytes:
    """One ``hosts.toml`` (``auths``: registry host -> base64 ``user:password``)."""
    if not mirror_set.mirrors:
        return b""
    fallback = (mirror_set.mirrors[0].host if mirror_set.never_contact_source
                else mirror_set.source)
    out = [f'server = "{_v2(fallback)}"', "", "override_path = true"]
    for m in mirror_set.mirrors:
        capabilities = '["pull", "resolve"]' if m.resolve_tags else '["pull"]'
        out += ["", f'[host."{_v2(m.host)}"]', f"  capabilities = {capabilities}",
                "  override_path = true"]
        auth = auths.get(registry_host(m.host))
        if auth:
            out += [f'  [host."{_v2(m.host)}".header]', f'    authorization = "Basic {auth}"']
    return ("\n".join(out) + "\n").encode()


def pull_secret_auths(doc: Mapping[str, Any]) -> dict[str, str]:
    """registry -> base64 ``user:password`` from a ``.dockerconfigjson`` document."""
    out: dict[str, str] = {}
    for registry, entry in ((doc.get("auths") or {}) if isinstance(doc, Mapping) else {}).items():
        if not isinstance(entry, Mapping):
            continue
        if entry.get("auth"):
            out[str(registry)] = str(entry["auth"])
        elif entry.get("username") is not None and entry.get("password") is not None:
            raw = f"{entry['username']}:{entry['password']}".encode()
            out[str(registry)] = base64.b64encode(raw).decode()
    return out


def _items(api: KubeClient, path: str) -> list[Mapping[str, Any]]:
    try:
        items: list[Mapping[str, Any]] = api.request("GET", path).get("items") or []
    except ApiError as err:
        if err.not_found:
            return []  # not OpenShift: no mirror sets
        raise
    return items


def read_registry_files(api: KubeClient) -> dict[str, bytes]:
    """``<registry>\\hosts.toml`` -> content, for the cluster's mirror sets."""
    entries: list[tuple[str, list[str], bool, bool]] = []
    for path, key, tags in ((DIGEST_SETS, "imageDigestMirrors", False),
                            (TAG_SETS, "imageTagMirrors", True)):
        for obj in _items(api, path):
            for entry in (obj.get("spec") or {}).get(key) or []:
                entries.append((str(entry.get("source", "")),
                                [str(m) for m in entry.get("mirrors") or []], tags,
                                entry.get("mirrorSourcePolicy") == NEVER_CONTACT_SOURCE))
    sets = merge(e for e in entries if e[0] and e[1])
    if not sets:
        return {}
    auths: dict[str, str] = {}
    try:
        secret = api.request("GET", PULL_SECRET)
        raw = base64.b64decode((secret.get("data") or {}).get(".dockerconfigjson") or "")
        auths = pull_secret_auths(json.loads(raw or b"{}"))
    except ApiError as err:
        if not err.not_found:
            raise
    except ValueError:
        pass  # an unreadable pull secret: mirrors without credentials
    return {f"{s.source}\\hosts.toml": content for s in sets
            if (content := hosts_toml(s, auths))}
