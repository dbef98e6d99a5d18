"""AES-256-GCM encryption of secrets with a key id on each ciphertext.

Ciphertext format (text, so it fits any column): ``v1:<kid>:<base64(nonce || ct || tag)>``.
The key id lets several keys decrypt while the newest encrypts, so keys rotate without
downtime; ``crmhost rotate-keys`` re-encrypts every stored secret with the newest key.
Fernet is not used: it is AES-128, and the roadmap asks for AES-256.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crmhost.errors import ConfigurationError

__all__ = ["DecryptionError", "TokenCipher", "generate_key_spec", "load_cipher"]

_PREFIX = "v1"
_NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext could not be decrypted (unknown key id, tampered, or not ours)."""


@dataclass(frozen=True)
class TokenCipher:
    """Encrypts with the first key, decrypts with any.

    Attributes:
        keys: ``(kid, 32-byte key)`` pairs, newest first.
    """

    keys: tuple[tuple[str, bytes], ...] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigurationError("at least one encryption key is required")
        for kid, key in self.keys:
            if len(key) != 32:
                raise ConfigurationError(f"encryption key {kid!r} must be 32 bytes (AES-256)")
            if not kid or ":" in kid:
                raise ConfigurationError(f"encryption key id {kid!r} must be non-empty without ':'")

    def __repr__(self) -> str:
        return f"TokenCipher(kids={[kid for kid, _ in self.keys]!r})"

    @property
    def current_kid(self) -> str:
        """The id of the key that encrypts."""
        return self.keys[0][0]

    def encrypt(self, plaintext: str, *, associated: str = "") -> str:
        """Encrypt ``plaintext``; ``associated`` binds it to its row (e.g. integration id)."""
        kid, key = self.keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        ct = AESGCM(key).encrypt(nonce, plaintext.encode(), associated.encode() or None)
        return f"{_PREFIX}:{kid}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def decrypt(self, token: str, *, associated: str = "") -> str:
        """Decrypt a value made by :meth:`encrypt` with any known key."""
        try:
            prefix, kid, payload = token.split(":", 2)
        except ValueError as exc:
            raise DecryptionError("not a crmhost ciphertext") from exc
        if prefix != _PREFIX:
            raise DecryptionError(f"unknown ciphertext version {prefix!r}")
        key = dict(self.keys).get(kid)
        if key is None:
            raise DecryptionError(f"no key with id {kid!r} is configured")
        try:
            raw = base64.urlsafe_b64decode(payload.encode())
            return (
                AESGCM(key)
                .decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], associated.encode() or None)
                .decode()
            )
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DecryptionError(f"ciphertext under key {kid!r} failed authentication") from exc

    def key_id_of(self, token: str) -> str:
        """The key id a ciphertext was made with."""
        return token.split(":", 2)[1]

    @classmethod
    def from_spec(cls, spec: str) -> TokenCipher:
        """Parse ``kid:base64key[,kid:base64key...]`` (``CRMHOST_ENCRYPTION_KEYS``)."""
        keys = []
        for i, part in enumerate(p.strip() for p in spec.split(",")):
            if not part:
                continue
            kid, sep, b64 = part.partition(":")
            if not sep:
                raise ConfigurationError(
                    f"CRMHOST_ENCRYPTION_KEYS entry {i + 1} must be 'kid:base64key' (no ':' found)"
                )
            try:
                key = base64.urlsafe_b64decode(b64.encode() + b"=" * (-len(b64) % 4))
            except (binascii.Error, ValueError) as exc:
                raise ConfigurationError(
                    f"CRMHOST_ENCRYPTION_KEYS entry {i + 1} ({kid!r}) is not valid base64"
                ) from exc
            keys.append((kid, key))
        return cls(tuple(keys))


def generate_key_spec(kid: str | None = None) -> str:
    """A new ``kid:base64key`` entry for ``CRMHOST_ENCRYPTION_KEYS``."""
    kid = kid or "k" + secrets.token_hex(4)
    return f"{kid}:{base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def load_cipher(spec: str | None, data_dir: Path) -> tuple[TokenCipher, str | None]:
    """The configured cipher, or the embedded default's key from ``data_dir``.

    Returns:
        The cipher and, when a key file was generated just now, its path (so the caller can
        say so once).
    """
    if spec:
        return TokenCipher.from_spec(spec), None
    key_file = data_dir / "encryption.keys"
    created = None
    if not key_file.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(generate_key_spec() + "\n")
        created = str(key_file)
    return TokenCipher.from_spec(key_file.read_text().strip()), created
