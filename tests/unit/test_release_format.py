"""The release format (protocol/release.py): signatures, bundle manifests, version order, refusals."""

from __future__ import annotations

import base64
import json
import stat
import zipfile
from pathlib import Path

import pytest

from monitor_agent.update.commands import run_args
from monitor_agent.update.install import stage, this_platform
from monitor_agent.update.state import Layout, Pending, Step, move, write_json
from monitor_server.releases_cli import keygen, signature_of
from protocol.errors import IllegalTransition
from protocol.release import (
    Manifest,
    Refusal,
    ReleaseRefused,
    check_platform,
    check_upgrade,
    extract_wheels,
    generate_key,
    manifest_for,
    read_manifest,
    sha256_file,
    sign,
    verify,
    verify_file,
    version_key,
    write_bundle,
)

DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return generate_key()


def _bundle(
    tmp_path: Path, version: str = "0.2.0", platform: tuple[str, str] = ("3.11", "linux-x86_64")
) -> Path:
    wheels = tmp_path / f"wheels-{version}"
    wheels.mkdir()
    (wheels / f"monitor-{version}-py3-none-any.whl").write_bytes(b"not really a wheel " + version.encode())
    (wheels / "psutil-7.0-cp36-abi3-linux_x86_64.whl").write_bytes(b"psutil bytes")
    out = tmp_path / f"bundle-{version}.zip"
    write_bundle(out, manifest_for(wheels, version, *platform, "2026-01-01T00:00:00Z"), wheels)
    return out


def _refusal(exc: pytest.ExceptionInfo[ReleaseRefused]) -> Refusal:
    return exc.value.code


def test_sign_then_verify_round_trip(keys: tuple[bytes, bytes]) -> None:
    """A signature made with the private key verifies with its public key."""
    private, public = keys
    verify(DIGEST, sign(DIGEST, private), public)


def test_a_signature_covers_the_digest_with_the_documented_prefix(keys: tuple[bytes, bytes]) -> None:
    """Ed25519 over b"monitor-release-v1:" + hex digest, as the module docstring says."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    private, public = keys
    signature = base64.b64decode(sign(DIGEST, private))
    key = load_pem_public_key(public)
    key.verify(signature, b"monitor-release-v1:" + DIGEST.encode())  # type: ignore[union-attr, call-arg]


def test_another_digest_is_refused_as_a_bad_signature(keys: tuple[bytes, bytes]) -> None:
    """A signature of one bundle does not vouch for another."""
    private, public = keys
    with pytest.raises(ReleaseRefused) as refused:
        verify("cd" * 32, sign(DIGEST, private), public)
    assert _refusal(refused) is Refusal.BAD_SIGNATURE
    assert "does not match" in refused.value.reason


def test_a_wrong_key_is_refused(keys: tuple[bytes, bytes]) -> None:
    """A bundle signed with some other key is refused, whoever made it."""
    _, public = keys
    other_private, _ = generate_key()
    with pytest.raises(ReleaseRefused) as refused:
        verify(DIGEST, sign(DIGEST, other_private), public)
    assert _refusal(refused) is Refusal.BAD_SIGNATURE


@pytest.mark.parametrize("signature", ["", "!!!not base64", base64.b64encode(b"short").decode()])
def test_garbage_signatures_are_refused(keys: tuple[bytes, bytes], signature: str) -> None:
    """Empty, non-base64 or wrong-length signatures: a bad signature, not a crash."""
    with pytest.raises(ReleaseRefused) as refused:
        verify(DIGEST, signature, keys[1])
    assert _refusal(refused) is Refusal.BAD_SIGNATURE


def test_an_unreadable_public_key_is_refused(keys: tuple[bytes, bytes]) -> None:
    """A key file that is not an Ed25519 public key refuses every update, saying so."""
    with pytest.raises(ReleaseRefused) as refused:
        verify(DIGEST, sign(DIGEST, keys[0]), b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    assert _refusal(refused) is Refusal.NO_KEY


def test_a_tampered_bundle_is_refused_with_its_hash(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    """One byte changed after signing: the hash no longer matches what was signed."""
    bundle = _bundle(tmp_path)
    digest = sha256_file(bundle)
    signature = sign(digest, keys[0])
    assert verify_file(bundle, digest, signature, keys[1]) == digest
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bundle.write_bytes(bytes(data))
    with pytest.raises(ReleaseRefused) as refused:
        verify_file(bundle, digest, signature, keys[1])
    assert _refusal(refused) is Refusal.HASH_MISMATCH
    assert digest in refused.value.reason


def test_sha256_file_streams_big_files(tmp_path: Path) -> None:
    """The streamed hash of a file over the chunk size equals hashlib's of the whole."""
    import hashlib

    path = tmp_path / "big"
    path.write_bytes(b"x" * (3 << 20) + b"tail")
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_round_trip_and_wheel_hashes(tmp_path: Path) -> None:
    """A written bundle reads back its manifest; its wheels unpack checked against their hashes."""
    bundle = _bundle(tmp_path)
    manifest = read_manifest(bundle)
    assert manifest.version == "0.2.0" and manifest.python == "3.11" and len(manifest.wheels) == 2
    assert manifest.wheel_named("monitor").name == "monitor-0.2.0-py3-none-any.whl"
    out = extract_wheels(bundle, tmp_path / "out")
    assert out == manifest
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(w.name for w in manifest.wheels)


def test_a_wheel_that_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    """A bundle rebuilt with a different wheel under the same manifest does not unpack."""
    bundle = _bundle(tmp_path)
    manifest = read_manifest(bundle)
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as out:
        out.writestr("manifest.json", manifest.to_json())
        for wheel in manifest.wheels:
            out.writestr("wheels/" + wheel.name, b"something else")
    with pytest.raises(ReleaseRefused) as refused:
        extract_wheels(forged, tmp_path / "out")
    assert _refusal(refused) is Refusal.HASH_MISMATCH


@pytest.mark.parametrize(
    "body",
    [
        {"format": 2},
        {"format": 1, "version": "1.0", "python": "3.11", "platform": "x", "created_at": "t", "wheels": []},
        {
            "format": 1,
            "version": "1.0",
            "python": "3.11",
            "platform": "x",
            "created_at": "t",
            "wheels": [{"name": "../../etc/evil.whl", "sha256": "ab" * 32}],
        },
        {
            "format": 1,
            "version": "one",
            "python": "3.11",
            "platform": "x",
            "created_at": "t",
            "wheels": [{"name": "a.whl", "sha256": "ab" * 32}],
        },
    ],
)
def test_bad_manifests_are_refused(body: dict[str, object]) -> None:
    """Wrong format, no wheels, a path instead of a file name, an unreadable version."""
    with pytest.raises(ReleaseRefused) as refused:
        Manifest.from_json(json.dumps(body).encode())
    assert _refusal(refused) in {Refusal.BAD_BUNDLE, Refusal.BAD_VERSION}


def test_a_file_that_is_no_bundle_is_refused(tmp_path: Path) -> None:
    """Not a zip, or a zip without manifest.json: a bad bundle."""
    path = tmp_path / "x.zip"
    path.write_bytes(b"plain text")
    with pytest.raises(ReleaseRefused) as refused:
        read_manifest(path)
    assert _refusal(refused) is Refusal.BAD_BUNDLE


def test_wrong_platform_is_refused(tmp_path: Path) -> None:
    """Wheels built for another Python or platform are refused before anything is installed."""
    manifest = read_manifest(_bundle(tmp_path))
    check_platform(manifest, "3.11", "linux-x86_64")
    with pytest.raises(ReleaseRefused) as refused:
        check_platform(manifest, "3.12", "linux-x86_64")
    assert _refusal(refused) is Refusal.WRONG_PLATFORM


@pytest.mark.parametrize(
    "ordered",
    [
        ["0.9", "1.0.dev1", "1.0a1", "1.0a2", "1.0b1", "1.0rc1", "1.0", "1.0.post1", "1.0.1", "1.10"],
        ["0.1.0", "0.1.1", "0.2.0", "0.10.0", "1.0.0"],
    ],
)
def test_versions_sort_as_pep_440_says(ordered: list[str]) -> None:
    """Pre-releases before the release, post-releases after it, numbers compared as numbers."""
    assert sorted(ordered, key=version_key) == ordered


def test_trailing_zeros_do_not_make_a_new_version() -> None:
    """1.0 and 1.0.0 are the same release."""
    assert version_key("1.0") == version_key("1.0.0")


@pytest.mark.parametrize("text", ["", "v1.0", "1.0-beta", "1.0+local", "1!2.0", "latest", "1..2"])
def test_unreadable_versions_are_refused(text: str) -> None:
    """What cannot be read is refused, not guessed at."""
    with pytest.raises(ReleaseRefused) as refused:
        version_key(text)
    assert _refusal(refused) is Refusal.BAD_VERSION


def test_downgrades_are_refused_unless_allowed() -> None:
    """A lower version needs allow_downgrade; the same version is never an update."""
    check_upgrade("0.2.0", "0.3.0")
    with pytest.raises(ReleaseRefused) as refused:
        check_upgrade("0.3.0", "0.2.0")
    assert _refusal(refused) is Refusal.DOWNGRADE
    check_upgrade("0.3.0", "0.2.0", allow_downgrade=True)
    with pytest.raises(ReleaseRefused) as refused:
        check_upgrade("0.3.0", "0.3.0", allow_downgrade=True)
    assert _refusal(refused) is Refusal.SAME_VERSION


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    """release.key is 0600, release.pub verifies its signatures, and neither is ever replaced."""
    private, public = keygen(tmp_path / "keys")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    verify(DIGEST, sign(DIGEST, private.read_bytes()), public.read_bytes())
    before = private.read_bytes()
    with pytest.raises(FileExistsError):
        keygen(tmp_path / "keys")
    assert private.read_bytes() == before


def test_sign_reports_version_hash_and_signature(tmp_path: Path) -> None:
    """`releases sign` output verifies against the bundle with the public key."""
    private, public = keygen(tmp_path / "keys")
    bundle = _bundle(tmp_path)
    signed = signature_of(bundle, private)
    assert signed["version"] == "0.2.0"
    assert verify_file(bundle, signed["sha256"], signed["signature"], public.read_bytes())


def test_update_steps_refuse_illegal_moves() -> None:
    """The update journal moves install -> switch -> probation -> (done | roll back) only."""
    assert move(None, Step.INSTALLING) is Step.INSTALLING
    with pytest.raises(IllegalTransition):
        move(None, Step.PROBATION)
    with pytest.raises(IllegalTransition):
        move(Step.INSTALLING, Step.PROBATION)
    with pytest.raises(IllegalTransition):
        move(Step.ROLLING_BACK, Step.PROBATION)
    pending = Pending("0.2.0", Step.INSTALLING, old_current=None, old_previous=None)
    assert pending.to(Step.SWITCHING).to(Step.PROBATION).step is Step.PROBATION


def test_pointers_and_journal_round_trip(tmp_path: Path) -> None:
    """current/previous are relative symlinks replaced whole; the journal reads back what was written."""
    layout = Layout(tmp_path)
    assert layout.pointer("current") is None
    layout.set_pointer("current", "0.2.0")
    layout.set_pointer("current", "0.3.0")
    assert layout.pointer("current") == "0.3.0"
    assert (tmp_path / "releases" / "current").readlink() == Path("0.3.0")
    layout.set_pointer("current", None)
    assert layout.pointer("current") is None
    pending = Pending("0.2.0", Step.PROBATION, old_current="0.1.0", old_previous=None, probations=2)
    layout.write_pending(pending)
    assert layout.read_pending() == pending
    assert not [p for p in layout.update.iterdir() if p.name.endswith(".tmp")]


def test_a_journal_with_a_field_this_version_does_not_know_is_read(tmp_path: Path) -> None:
    """A version rolled back to reads the journal a newer launcher wrote: unknown fields are ignored."""
    layout = Layout(tmp_path)
    body = {"version": "0.3.0", "step": "rolling_back", "old_current": "0.2.0", "old_previous": None}
    write_json(layout.journal, {**body, "code": "no_welcome", "added_later": 1})
    pending = layout.read_pending()
    assert pending is not None and pending.step is Step.ROLLING_BACK and pending.code == "no_welcome"


def test_launch_forwards_the_agent_flags_but_not_its_own() -> None:
    """`monitor-agent launch --release-key K --server S ...` runs `monitor-agent run --server S ...`."""
    from monitor_agent.cli import build_parser

    args = build_parser().parse_args(
        [
            "launch",
            "--release-key",
            "k.pub",
            "--update-deadline",
            "5",
            "--server",
            "http://h:1",
            "--allow",
            "x",
        ]
    )
    assert run_args(args) == ["--server", "http://h:1", "--allow", "x"]


def _stage(tmp_path: Path, layout: Layout, version: str, keys: tuple[bytes, bytes]) -> None:
    bundle = _bundle(tmp_path, version, this_platform())
    digest = sha256_file(bundle)
    stage(layout, bundle, digest, sign(digest, keys[0]), keys[1], "0.1.0")


def test_staging_again_replaces_the_waiting_update(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    """A newer bundle staged before the launcher started the first replaces it, bundle and all."""
    layout = Layout(tmp_path / "state")
    _stage(tmp_path, layout, "0.2.0", keys)
    _stage(tmp_path, layout, "0.3.0", keys)
    staged = layout.read_staged()
    assert staged is not None and staged.version == "0.3.0"
    assert [p.name for p in layout.incoming.iterdir()] == ["0.3.0.zip"]


def test_nothing_is_staged_while_an_update_is_under_way(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    """Between an update's first step and its last, staging another is refused (update_in_progress)."""
    layout = Layout(tmp_path / "state")
    layout.write_pending(Pending("0.2.0", Step.PROBATION, old_current=None, old_previous=None))
    with pytest.raises(ReleaseRefused) as refused:
        _stage(tmp_path, layout, "0.3.0", keys)
    assert _refusal(refused) is Refusal.BUSY
    assert layout.read_staged() is None


def test_a_bundle_for_another_platform_is_not_staged(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    """Signed and intact but built for another interpreter: refused before it is copied in."""
    layout = Layout(tmp_path / "state")
    bundle = _bundle(tmp_path, "0.2.0", ("2.7", "plan9-mips"))
    digest = sha256_file(bundle)
    with pytest.raises(ReleaseRefused) as refused:
        stage(layout, bundle, digest, sign(digest, keys[0]), keys[1], "0.1.0")
    assert _refusal(refused) is Refusal.WRONG_PLATFORM
    assert layout.read_staged() is None and not list(layout.incoming.iterdir())
