"""Build a one-layer OCI image-layout tar from a static busybox binary, with no registry.

The archive is what ``ctr image import`` reads (``cni-runtime-feasibility.md`` §2)::

    oci-layout                         {"imageLayoutVersion": "1.0.0"}
    index.json                         one manifest, annotated with the image name
    blobs/sha256/<layer>               uncompressed tar: bin/busybox, applet symlinks, empty dirs
    blobs/sha256/<config>              image config; rootfs.diff_ids = [layer digest]
    blobs/sha256/<manifest>

The layer is left uncompressed so that its digest is also its diff_id. Every
entry has mtime 0 and owner root, so the same busybox and name give the same
bytes (and the same image digest) on every run.

ctr 1.6 names an imported image after the ``io.containerd.image.name``
annotation; ``org.opencontainers.image.ref.name`` (the tag, as the OCI spec
uses it) is set as well for other readers.

Stdlib only.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_APPLETS",
    "build_busybox_image",
    "image_tag",
    "oci_architecture",
]

# What lab containers run: a shell and the network tools tests need.
DEFAULT_APPLETS = (
    "sh",
    "ip",
    "ping",
    "sleep",
    "cat",
    "nc",
    "wget",
    "ls",
    "hostname",
    "ifconfig",
    "route",
)

MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

_EMPTY_DIRS = ("dev", "etc", "proc", "sys", "tmp", "run", "root")
_ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n",
}
# GOARCH names, which OCI platforms use, for the machine names Linux reports.
_ARCHES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def oci_architecture(machine: str | None = None) -> str:
    """The OCI/GOARCH architecture of ``machine`` (default: this machine)."""
    machine = machine or platform.machine()
    try:
        return _ARCHES[machine]
    except KeyError:
        raise ValueError(f"no OCI architecture known for machine {machine!r}") from None


def image_tag(name: str) -> str:
    """The tag of an image reference (``latest`` when it has none)."""
    last = name.rsplit("/", 1)[-1]
    _, sep, tag = last.partition(":")
    return tag if sep and tag else "latest"


def _entry(path: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _add_bytes(tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o644) -> None:
    tar.addfile(_entry(path, tarfile.REGTYPE, mode, size=len(data)), io.BytesIO(data))


def _layer(busybox: bytes, applets: Iterable[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_entry("bin", tarfile.DIRTYPE, 0o755))
        _add_bytes(tar, "bin/busybox", busybox, mode=0o755)
        for applet in sorted(set(applets) - {"busybox"}):
            if not applet or "/" in applet or applet in (".", ".."):
                raise ValueError(f"bad applet name {applet!r}")
            tar.addfile(_entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        for directory in _EMPTY_DIRS:
            mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(_entry(directory, tarfile.DIRTYPE, mode))
        for path, text in _ETC_FILES.items():
            _add_bytes(tar, path, text.encode())
    return buf.getvalue()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, blob: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
        "size": len(blob),
        **extra,
    }


def build_busybox_image(
    busybox: Path,
    out: Path,
    name: str,
    *,
    applets: Iterable[str] = DEFAULT_APPLETS,
    architecture: str | None = None,
) -> None:
    """Write an OCI image-layout tar at ``out`` holding ``busybox`` as image ``name``.

    ``busybox`` must be a statically linked binary (the image has no libc).
    ``name`` is a full reference such as ``localhost/axoneme/busybox:1``; it is
    what ``ctr image ls`` shows after ``ctr image import out``.
    """
    if not name or any(ch.isspace() for ch in name):
        raise ValueError(f"bad image name {name!r}")
    arch = architecture or oci_architecture()
    layer = _layer(busybox.read_bytes(), applets)
    layer_desc = _descriptor(MT_LAYER, layer)
    config = _json_bytes(
        {
            "architecture": arch,
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "axoneme ociimage"}],
        }
    )
    config_desc = _descriptor(MT_CONFIG, config)
    manifest = _json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config_desc,
            "layers": [layer_desc],
        }
    )
    manifest_desc = _descriptor(
        MT_MANIFEST,
        manifest,
        platform={"architecture": arch, "os": "linux"},
        annotations={ANNOTATION_CONTAINERD_NAME: name, ANNOTATION_REF_NAME: image_tag(name)},
    )
    index = _json_bytes({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [manifest_desc]})

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_entry("blobs", tarfile.DIRTYPE, 0o755))
            tar.addfile(_entry("blobs/sha256", tarfile.DIRTYPE, 0o755))
            for desc, blob in (
                (layer_desc, layer),
                (config_desc, config),
                (manifest_desc, manifest),
            ):
                _add_bytes(tar, "blobs/sha256/" + desc["digest"].removeprefix("sha256:"), blob)
            _add_bytes(tar, "oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))
            _add_bytes(tar, "index.json", index)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
