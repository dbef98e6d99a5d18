"""AES-256-GCM token cipher: round trips, bindings, key ids, configuration errors, key files."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from crmhost.errors import ConfigurationError
from crmhost.security.tokens import DecryptionError, TokenCipher, generate_key_spec, load_cipher

SPEC_A = generate_key_spec("A")
SPEC_B = generate_key_spec("B")


def test_round_trip_with_associated_data() -> None:
    cipher = TokenCipher.from_spec(SPEC_A)
    token = cipher.encrypt("s3cr3t-ü", associated="integration-1")
    assert token.startswith("v1:A:")
    assert "s3cr3t" not in token
    assert cipher.decrypt(token, associated="integration-1") == "s3cr3t-ü"
    # a fresh nonce each time: the same plaintext never gives the same ciphertext
    assert cipher.encrypt("s3cr3t-ü", associated="integration-1") != token


def test_wrong_associated_data_fails() -> None:
    cipher = TokenCipher.from_spec(SPEC_A)
    token = cipher.encrypt("s3cr3t", associated="integration-1")
    for wrong in ("integration-2", ""):
        with pytest.raises(DecryptionError, match="failed authentication"):
            cipher.decrypt(token, associated=wrong)


def test_unknown_key_id_fails() -> None:
    token = TokenCipher.from_spec(SPEC_A).encrypt("s3cr3t")
    with pytest.raises(DecryptionError, match="no key with id 'A'"):
        TokenCipher.from_spec(SPEC_B).decrypt(token)


def test_tampering_fails() -> None:
    cipher = TokenCipher.from_spec(SPEC_A)
    token = cipher.encrypt("s3cr3t", associated="x")
    prefix, kid, payload = token.split(":", 2)
    raw = bytearray(base64.urlsafe_b64decode(payload))
    for index in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        changed = bytearray(raw)
        changed[index] ^= 0x01
        forged = f"{prefix}:{kid}:{base64.urlsafe_b64encode(bytes(changed)).decode()}"
        with pytest.raises(DecryptionError, match="failed authentication"):
            cipher.decrypt(forged, associated="x")
    with pytest.raises(DecryptionError, match="failed authentication"):
        cipher.decrypt(f"{prefix}:{kid}:{payload[:-8]}", associated="x")  # truncated
    with pytest.raises(DecryptionError, match="unknown ciphertext version 'v0'"):
        cipher.decrypt(f"v0:{kid}:{payload}", associated="x")
    with pytest.raises(DecryptionError, match="not a crmhost ciphertext"):
        cipher.decrypt("plaintext", associated="x")


def test_newest_key_encrypts_and_older_keys_still_decrypt() -> None:
    old = TokenCipher.from_spec(SPEC_A).encrypt("s3cr3t")
    both = TokenCipher.from_spec(f"{SPEC_B}, {SPEC_A}")
    assert both.current_kid == "B"
    assert both.key_id_of(both.encrypt("x")) == "B"
    assert both.decrypt(old) == "s3cr3t"


def test_repr_shows_key_ids_only() -> None:
    cipher = TokenCipher.from_spec(f"{SPEC_B},{SPEC_A}")
    assert repr(cipher) == "TokenCipher(kids=['B', 'A'])"
    for spec in (SPEC_A, SPEC_B):
        assert spec.split(":", 1)[1] not in repr(cipher)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (f"{SPEC_A},nocolon", "entry 2 must be 'kid:base64key'"),
        ("A:!!!not base64!!!", r"entry 1 \('A'\) is not valid base64"),
        ("short:" + base64.urlsafe_b64encode(b"x" * 16).decode(), "key 'short' must be 32 bytes"),
        (":" + SPEC_A.split(":", 1)[1], "key id '' must be non-empty"),
        (" , ", "at least one encryption key"),
    ],
    # SPEC_A is random per process: ids by position keep pytest-xdist's workers agreeing
    ids=["no-colon", "not-base64", "short-key", "empty-kid", "blank"],
)
def test_bad_key_specs_name_the_entry(spec: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        TokenCipher.from_spec(spec)
    secret = SPEC_A.split(":", 1)[1]
    assert secret not in str(caught.value)


def test_generated_key_file_is_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    cipher, created = load_cipher(None, data_dir)
    assert created == str(data_dir / "encryption.keys")
    assert stat.S_IMODE((data_dir / "encryption.keys").stat().st_mode) == 0o600
    token = cipher.encrypt("s3cr3t")
    again, created_again = load_cipher(None, data_dir)
    assert created_again is None
    assert again.decrypt(token) == "s3cr3t"
    # an explicit key wins over the file
    configured, _ = load_cipher(SPEC_B, data_dir)
    assert configured.current_kid == "B"
