"""Agent releases (DESIGN §12): the bundle format, its signature and the version rules.

A **bundle** is a zip file holding ``manifest.json`` and the wheels it names under ``wheels/``::

    manifest.json   {"format": 1, "version": "0.2.0", "python": "3.11",
                     "platform": "linux-x86_64", "created_at": "2026-11-26T22:00:00Z",
                     "wheels": [{"name": "monitor-0.2.0-py3-none-any.whl", "sha256": "..."}, ...]}
    wheels/monitor-0.2.0-py3-none-any.whl
    wheels/psutil-...whl

``python`` is ``major.minor`` of the interpreter that built it and ``platform`` is
``sysconfig.get_platform()`` there: the wheels are installable on that pair only.

The **digest** of a bundle is the SHA-256 of the whole file, as 64 lowercase hex characters.
The **signature** is Ed25519 over the ASCII bytes of ``SIGNED_PREFIX + digest``, i.e.
``b"monitor-release-v1:" + digest.encode("ascii")``, sent as standard base64. The prefix keeps a
release key's signature from meaning anything outside this use. Keys are PEM: PKCS#8 for the
private key, SubjectPublicKeyInfo for the public key (what ``monitor-server releases keygen``
writes). A signature over the digest covers the manifest and every wheel in the file; each wheel's
own hash in the manifest is checked again when the bundle is unpacked.

**Versions** are PEP 440 release numbers with optional pre, post and dev parts (``1.2.3``,
``1.2.3rc1``, ``1.2.3.post1``, ``1.2.3.dev4``), compared as PEP 440 does; anything else (local
versions, epochs, letters elsewhere) is refused rather than guessed at.

Errors: every refusal is a ``ReleaseRefused`` carrying a ``Refusal`` code (what the agent reports
to the hub) and a sentence for people.

**Reports**: an update that failed (``update_status`` state ``failed``) or was rolled back
(``rolled_back``) carries the reason ``update_failed: <code>: <sentence>``, e.g.
``update_failed: bad_signature: ...`` or ``update_failed: no_welcome: ...`` (``failure_reason``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.errors import MonitorError

FORMAT = 1
MANIFEST = "manifest.json"
WHEELS_DIR = "wheels/"
SIGNED_PREFIX = b"monitor-release-v1:"
_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_WHEEL_NAME = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")


class Refusal(StrEnum):
    """Why a release was refused; the agent reports the code with ``update_failed``."""

    BAD_SIGNATURE = "bad_signature"
    HASH_MISMATCH = "hash_mismatch"
    BAD_BUNDLE = "bad_bundle"
    BAD_VERSION = "bad_version"
    DOWNGRADE = "downgrade"
    SAME_VERSION = "same_version"
    WRONG_PLATFORM = "wrong_platform"
    NO_KEY = "no_key"
    BUSY = "update_in_progress"  # another update is between its first and last step


UPDATE_FAILED = "update_failed"


def failure_reason(detail: str) -> str:
    """The reason an agent reports for a failed or rolled-back update: ``update_failed: <detail>``
    (``detail``: ``<code>: <sentence>``)."""
    return f"{UPDATE_FAILED}: {detail}"


class ReleaseRefused(MonitorError, ValueError):
    """A bundle, signature or version the agent must not install."""

    def __init__(self, code: Refusal, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


# Hashes and signatures


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file as lowercase hex, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def signed_message(digest: str) -> bytes:
    """The bytes an Ed25519 release signature covers."""
    if not _HEX64.fullmatch(digest):
        raise ReleaseRefused(Refusal.HASH_MISMATCH, f"not a SHA-256 hex digest: {digest[:80]!r}")
    return SIGNED_PREFIX + digest.encode("ascii")


def generate_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def sign(digest: str, private_key_pem: bytes) -> str:
    """The base64 Ed25519 signature of a bundle digest."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the release key is not an Ed25519 private key")
    return base64.b64encode(key.sign(signed_message(digest))).decode("ascii")


def load_public_key(public_key_pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise ReleaseRefused(Refusal.NO_KEY, f"the release public key is not readable PEM: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseRefused(Refusal.NO_KEY, "the release public key is not an Ed25519 key")
    return key


def verify(digest: str, signature_b64: str, public_key_pem: bytes) -> None:
    """Return if ``signature_b64`` is the release key's signature of ``digest``, else refuse."""
    key = load_public_key(public_key_pem)
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ReleaseRefused(Refusal.BAD_SIGNATURE, "the signature is not base64") from None
    try:
        key.verify(signature, signed_message(digest))
    except InvalidSignature:
        raise ReleaseRefused(
            Refusal.BAD_SIGNATURE, "the signature does not match this bundle and the trusted release key"
        ) from None


def verify_file(path: Path, sha256: str, signature_b64: str, public_key_pem: bytes) -> str:
    """Hash ``path``, compare with the announced ``sha256``, check the signature; return the digest."""
    actual = sha256_file(path)
    if actual != sha256.lower():
        raise ReleaseRefused(
            Refusal.HASH_MISMATCH, f"the bundle's SHA-256 is {actual}, the release says {sha256}"
        )
    verify(actual, signature_b64, public_key_pem)
    return actual


# Versions

_VERSION = re.compile(
    r"(?P<release>\d+(?:\.\d+)*)(?:(?P<pre>a|b|rc)(?P<pre_n>\d+))?"
    r"(?:\.post(?P<post>\d+))?(?:\.dev(?P<dev>\d+))?"
)
_PRE_RANK = {"a": 0, "b": 1, "rc": 2}

VersionKey = tuple[tuple[int, ...], tuple[int, int, int], int, tuple[int, int]]


def version_key(text: str) -> VersionKey:
    """A sort key that orders versions as PEP 440 does (``1.0.dev1 < 1.0a1 < 1.0 < 1.0.post1``)."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise ReleaseRefused(Refusal.BAD_VERSION, f"cannot read version {text!r} (expected e.g. 1.2.3)")
    release = tuple(int(part) for part in match["release"].split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]  # 1.0 == 1.0.0
    if match["pre"]:
        pre = (0, _PRE_RANK[match["pre"]], int(match["pre_n"]))
    elif match["dev"] is not None and match["post"] is None:
        pre = (-1, 0, 0)  # 1.0.dev1 comes before 1.0a1
    else:
        pre = (1, 0, 0)
    post = int(match["post"]) if match["post"] is not None else -1
    dev = (0, int(match["dev"])) if match["dev"] is not None else (1, 0)
    return release, pre, post, dev


def check_upgrade(running: str, offered: str, allow_downgrade: bool = False) -> None:
    """Refuse ``offered`` if it is the running version, or older without ``allow_downgrade``."""
    now, new = version_key(running), version_key(offered)
    if new == now:
        raise ReleaseRefused(Refusal.SAME_VERSION, f"version {offered} is already running")
    if new < now and not allow_downgrade:
        raise ReleaseRefused(
            Refusal.DOWNGRADE, f"{offered} is older than the running {running} and downgrade is not allowed"
        )


# The manifest


@dataclass(frozen=True, slots=True)
class WheelEntry:
    name: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    python: str
    platform: str
    created_at: str
    wheels: tuple[WheelEntry, ...]
    format: int = FORMAT

    def to_json(self) -> bytes:
        body = {
            "format": self.format,
            "version": self.version,
            "python": self.python,
            "platform": self.platform,
            "created_at": self.created_at,
            "wheels": [{"name": w.name, "sha256": w.sha256} for w in self.wheels],
        }
        return json.dumps(body, indent=2).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            body = json.loads(raw)
        except ValueError:
            raise _bad("manifest.json is not JSON") from None
        if not isinstance(body, dict):
            raise _bad("manifest.json is not an object")
        if body.get("format") != FORMAT:
            raise _bad(f"manifest format {body.get('format')!r} is not {FORMAT}")
        text = {key: body.get(key) for key in ("version", "python", "platform", "created_at")}
        if bad := [key for key, value in text.items() if not isinstance(value, str) or not value]:
            raise _bad(f"manifest fields missing or not strings: {', '.join(bad)}")
        version_key(str(text["version"]))
        return cls(
            version=str(text["version"]),
            python=str(text["python"]),
            platform=str(text["platform"]),
            created_at=str(text["created_at"]),
            wheels=_wheels(body.get("wheels")),
        )

    def wheel_named(self, distribution: str) -> WheelEntry:
        """The wheel of ``distribution`` (``monitor``), by the wheel file name's first part."""
        for wheel in self.wheels:
            if wheel.name.split("-")[0].lower().replace("_", "-") == distribution:
                return wheel
        raise _bad(f"the bundle holds no wheel of {distribution}")


def _bad(reason: str) -> ReleaseRefused:
    return ReleaseRefused(Refusal.BAD_BUNDLE, reason)


def _wheels(value: Any) -> tuple[WheelEntry, ...]:
    if not isinstance(value, list) or not value:
        raise _bad("manifest wheels must be a non-empty list")
    entries = []
    for item in value:
        if not isinstance(item, dict):
            raise _bad(f"manifest wheel entry is not an object: {item!r}")
        name, digest = item.get("name"), item.get("sha256")
        # A bare file name: nothing in a bundle may be written outside the folder it unpacks into.
        if not isinstance(name, str) or not _WHEEL_NAME.fullmatch(name) or name.startswith("."):
            raise _bad(f"manifest wheel name {name!r} is not a wheel file name")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise _bad(f"manifest wheel {name} has no SHA-256 hex digest")
        entries.append(WheelEntry(name, digest))
    return tuple(entries)


def read_manifest(path: Path) -> Manifest:
    """The manifest of the bundle at ``path`` (the wheels are not checked: see ``extract_wheels``)."""
    try:
        with zipfile.ZipFile(path) as bundle:
            raw = bundle.read(MANIFEST)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise _bad(f"{path.name} is not a release bundle: {exc}") from None
    return Manifest.from_json(raw)


def check_platform(manifest: Manifest, python: str, platform: str) -> None:
    """Refuse a bundle built for another interpreter version or platform than this one."""
    if (manifest.python, manifest.platform) != (python, platform):
        raise ReleaseRefused(
            Refusal.WRONG_PLATFORM,
            f"the bundle is for Python {manifest.python} on {manifest.platform}, "
            f"this agent runs Python {python} on {platform}",
        )


def extract_wheels(path: Path, dest: Path) -> Manifest:
    """Unpack the bundle's wheels into ``dest``, each checked against the manifest's hash."""
    manifest = read_manifest(path)
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as bundle:
        for wheel in manifest.wheels:
            try:
                data = bundle.read(WHEELS_DIR + wheel.name)
            except KeyError:
                raise _bad(f"the manifest names {wheel.name} but the bundle does not hold it") from None
            if hashlib.sha256(data).hexdigest() != wheel.sha256:
                raise ReleaseRefused(Refusal.HASH_MISMATCH, f"{wheel.name} does not match its manifest hash")
            (dest / wheel.name).write_bytes(data)
    return manifest


def write_bundle(out: Path, manifest: Manifest, wheel_dir: Path) -> None:
    """Write ``manifest`` and the wheels it names (read from ``wheel_dir``) as a bundle at ``out``."""
    partial = out.with_name(f".{out.name}.partial")
    # Wheels are compressed already: stored, so the file is the wheels plus a few hundred bytes.
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr(MANIFEST, manifest.to_json())
        for wheel in manifest.wheels:
            bundle.write(wheel_dir / wheel.name, WHEELS_DIR + wheel.name)
    partial.replace(out)


def manifest_for(wheel_dir: Path, version: str, python: str, platform: str, created_at: str) -> Manifest:
    """A manifest naming every wheel in ``wheel_dir`` with its hash."""
    entries = [{"name": p.name, "sha256": sha256_file(p)} for p in sorted(wheel_dir.glob("*.whl"))]
    version_key(version)
    return Manifest(version, python, platform, created_at, _wheels(entries))
