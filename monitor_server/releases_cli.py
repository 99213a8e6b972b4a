"""``monitor-server releases keygen|sign``: the release key pair and bundle signatures (DESIGN §12).

``keygen --out DIR`` writes ``release.key`` (Ed25519 private key, PKCS#8 PEM, mode 0600) and
``release.pub`` (the public key agents pin as ``release_key``) and refuses to replace either.
``sign FILE --key KEY`` prints ``{"version", "sha256", "signature"}`` for a bundle made by
``monitor-agent bundle``. Neither touches the database: keep the private key off the hub if you
can, sign where it lives, and give the hub the bundle and its signature.
``publish FILE --key KEY [--db DB]`` signs the bundle and stores it in the hub's database (the
version read from its manifest); a version already published is refused. It is in the audit log
(``release_published``, actor kind ``cli``, the OS user, the version). Roll it out over REST
(``POST /releases/{version}/rollout``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from protocol.errors import MonitorError
from protocol.release import generate_key, read_manifest, sha256_file, sign

if TYPE_CHECKING:
    from monitor_server.store.release_records import Release

PRIVATE_NAME = "release.key"
PUBLIC_NAME = "release.pub"


def keygen(out: Path) -> tuple[Path, Path]:
    """Write a new key pair into ``out``; raise FileExistsError rather than replace a key."""
    out.mkdir(parents=True, exist_ok=True)
    private, public = generate_key()
    private_path, public_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if existing := [p for p in (private_path, public_path) if p.exists()]:
        raise FileExistsError(f"{', '.join(map(str, existing))} already there; not replacing a release key")
    # O_EXCL: never follow or truncate something that appeared meanwhile; 0600 from the first byte.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
        handle.flush()
        os.fsync(handle.fileno())
    fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(public)
    return private_path, public_path


def signature_of(bundle: Path, key: Path) -> dict[str, str]:
    """What the hub needs to offer ``bundle``: its version, SHA-256 and Ed25519 signature."""
    manifest = read_manifest(bundle)
    digest = sha256_file(bundle)
    return {"version": manifest.version, "sha256": digest, "signature": sign(digest, key.read_bytes())}


def publish(bundle: Path, key: Path, db: str | Path, created_by: str) -> dict[str, str]:
    """Sign ``bundle`` and store it in the database ``db``; Conflict if its version is there.

    ``created_by``: ``cli:<OS user>`` from the command line; audited as that user, kind ``cli``.
    """
    import time

    from monitor_server.store.release_records import Release

    manifest = read_manifest(bundle)
    signed = signature_of(bundle, key)
    data = bundle.read_bytes()
    release = Release(
        version=manifest.version,
        sha256=signed["sha256"],
        signature=signed["signature"],
        size=len(data),
        manifest=json.loads(manifest.to_json()),
        created_at=time.time(),
        created_by=created_by,
    )
    asyncio.run(_store_release(db, release, data))
    return {**signed, "size": str(len(data))}


async def _store_release(db: str | Path, release: Release, data: bytes) -> None:
    from monitor_server.identity.audit import CLI, Audit, AuditAction
    from monitor_server.store import open_store

    store = open_store(db)
    await store.open()
    try:
        await store.create_release(release, data)
        detail = {"sha256": release.sha256, "size": release.size}
        actor = release.created_by.removeprefix(f"{CLI}:")
        await Audit(store).record(AuditAction.RELEASE_PUBLISHED, actor, release.version, None, detail, CLI)
    finally:
        await store.close()


def _publish(args: argparse.Namespace) -> None:
    from monitor_server.settings import Settings

    settings = Settings(db=args.db) if args.db else Settings()
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    published = publish(args.file, args.key, settings.db, f"cli:{user}")
    print(json.dumps(published))


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="monitor-server releases", description="Agent release signing.")
    sub = parser.add_subparsers(dest="action", required=True)
    gen = sub.add_parser("keygen", help="write release.key (0600) and release.pub into a folder")
    gen.add_argument("--out", type=Path, required=True, help="folder for the key pair")
    signer = sub.add_parser("sign", help="print a bundle's version, sha256 and signature as JSON")
    signer.add_argument("file", type=Path, help="a bundle made by `monitor-agent bundle`")
    signer.add_argument("--key", type=Path, required=True, help="the private key (release.key)")
    pub = sub.add_parser("publish", help="sign a bundle and store it in the hub's database")
    pub.add_argument("file", type=Path, help="a bundle made by `monitor-agent bundle`")
    pub.add_argument("--key", type=Path, required=True, help="the private key (release.key)")
    pub.add_argument("--db", help="database (MONITOR_DB, default ./data/monitor.db)")
    args = parser.parse_args(argv)
    try:
        if args.action == "publish":
            _publish(args)
        elif args.action == "keygen":
            private, public = keygen(args.out)
            print(f"wrote {private} (keep it secret) and {public} (give it to agents)", file=sys.stderr)
        else:
            print(json.dumps(signature_of(args.file, args.key)))
    except (OSError, ValueError, MonitorError) as exc:  # ReleaseRefused: a file that is no bundle
        sys.exit(f"monitor-server releases {args.action}: {exc}")
