"""Sealing provider secrets with AES-256-GCM (`cryptography`), under a keyring with key ids.

Each secret gets a fresh 96-bit nonce and is bound to its organization and config id as
associated data; the key id is stored beside each ciphertext so keys can rotate. The key is
`ONE_ENCRYPTION_KEY` (32 bytes, base64 or hex) or, by default, a keyring file generated under
`ONE_DATA_DIR`. `one-gateway rotate-key` adds a key to that file and re-seals every secret; a
running gateway that meets an unknown key id re-reads the file, so rotation needs no restart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.settings import Settings
from providers.sealing import Sealed, SealError

KEY_BYTES = 32
NONCE_BYTES = 12


def parse_key(value: str) -> bytes:
    """A 32-byte key from its base64 or hex spelling."""
    text = value.strip()
    candidates = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(text))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(text + "=" * (-len(text) % 4), validate=False))
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise ValueError("must be 32 bytes, written in base64 or hex")


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"one-gateway key id:" + key).hexdigest()[:12]


class KeyRing:
    """Keys by id; the newest seals, any of them opens what it sealed."""

    def __init__(self, keys: list[bytes], path: Path | None = None) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._path = path
        self._load(keys)

    def _load(self, keys: list[bytes]) -> None:
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.current = key_id(keys[-1])

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """`ONE_ENCRYPTION_KEY`, or the keyring file under `ONE_DATA_DIR` (made once)."""
        if settings.encryption_key is not None:
            return cls([parse_key(settings.encryption_key.get_secret_value())])
        path = settings.data_dir / "encryption-keys.json"
        if not path.exists():
            write_keys(path, [secrets.token_bytes(KEY_BYTES)], replace=False)
        return cls(read_keys(path), path)

    def seal(self, plaintext: str, *, context: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._keys[self.current].encrypt(nonce, plaintext.encode(), context)
        return {
            "kid": self.current,
            "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ciphertext).decode(),
        }

    def unseal(self, sealed: Sealed, *, context: bytes) -> str:
        if sealed.get("kid") not in self._keys and self._path is not None:
            self._load(read_keys(self._path))  # rotated by another process: look again
        cipher = self._keys.get(sealed.get("kid", ""))
        if cipher is None:
            raise SealError(f"sealed with key {sealed.get('kid')!r}, which this gateway lacks")
        try:
            nonce = base64.b64decode(sealed["nonce"])
            ciphertext = base64.b64decode(sealed["ct"])
            return cipher.decrypt(nonce, ciphertext, context).decode()
        except (InvalidTag, KeyError, ValueError, binascii.Error):
            raise SealError("a sealed secret failed its integrity check") from None

    def rotate(self) -> str:
        """Add a fresh key to the keyring file and make it current; returns its id."""
        if self._path is None:
            raise SealError("ONE_ENCRYPTION_KEY is set: rotate by changing it (see README)")
        keys = [*read_keys(self._path), secrets.token_bytes(KEY_BYTES)]
        write_keys(self._path, keys)
        self._load(keys)
        return self.current


def read_keys(path: Path) -> list[bytes]:
    return [base64.b64decode(k) for k in json.loads(path.read_text())["keys"]]


def write_keys(path: Path, keys: list[bytes], *, replace: bool = True) -> None:
    """Write the keyring atomically: a reader sees the old one or the new one. With
    `replace=False` an existing keyring wins: of two processes creating the first key at
    once, both end up with the same key (a key lost that way would lose its secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"keys": [base64.b64encode(k).decode() for k in keys]}, f)
    if replace:
        temporary.replace(path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
