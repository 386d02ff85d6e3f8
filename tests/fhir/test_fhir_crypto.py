"""PHI encryption primitives: row binding, key ids, blind indexes, cursors."""

from __future__ import annotations

import secrets

import pytest

from healthstack.core.crypto import DecryptionError, Keyring, aad, key_id_of, normalize
from healthstack.fhir.index import patient_terms

KEY_A, KEY_B = secrets.token_bytes(32), secrets.token_bytes(32)


def test_ciphertext_is_bound_to_its_row() -> None:
    ring = Keyring(KEY_A)
    key_id, blob = ring.encrypt(b'{"name":"x"}', aad("Patient", "1", 1))
    assert key_id == key_id_of(KEY_A)
    assert len(key_id) == 16
    assert ring.decrypt(key_id, blob, aad("Patient", "1", 1)) == b'{"name":"x"}'
    for other in (aad("Patient", "2", 1), aad("Patient", "1", 2), aad("Observation", "1", 1)):
        with pytest.raises(DecryptionError):
            ring.decrypt(key_id, blob, other)


def test_old_keys_decrypt_and_search_until_removed() -> None:
    old = Keyring(KEY_A)
    key_id, blob = old.encrypt(b"x", b"a")
    rotated = Keyring(KEY_B, (KEY_A,))
    assert rotated.active.key_id == key_id_of(KEY_B)
    assert rotated.decrypt(key_id, blob, b"a") == b"x"
    assert old.active.digest("family", "doe") in rotated.digests("family", "doe")
    with pytest.raises(DecryptionError, match="not configured"):
        Keyring(KEY_B).decrypt(key_id, blob, b"a")


def test_blind_index_key_is_derived_not_the_key() -> None:
    ring = Keyring(KEY_A)
    assert ring.active.index_key != KEY_A
    assert len(ring.active.index_key) == 32
    assert ring.active.digest("family", "doe") != ring.active.digest("given", "doe")
    assert Keyring(KEY_B).active.digest("family", "doe") != ring.active.digest("family", "doe")


def test_normalization_and_terms() -> None:
    assert normalize("  García-LÓPEZ ") == "garcia-lopez"
    terms = patient_terms(
        {
            "name": [{"family": "García-López", "given": ["Ana María"]}],
            "identifier": [{"system": "urn:x", "value": "A1"}],
            "birthDate": "1980-05",
        }
    )
    assert ("family", "garcia") in terms
    assert ("family", "garcia-lopez") in terms
    assert ("given", "maria") in terms
    assert ("name", "ana") in terms
    assert ("identifier.sv", "urn:x|A1") in terms
    assert ("birthyear", "1980") in terms


def test_cursor_tamper_and_lock_ids() -> None:
    ring = Keyring(KEY_A)
    sealed = ring.seal_cursor(b"state")
    assert ring.open_cursor(sealed) == b"state"
    with pytest.raises(DecryptionError):
        ring.open_cursor(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    assert set(Keyring(KEY_A).lock_ids("q")) <= set(Keyring(KEY_B, (KEY_A,)).lock_ids("q"))


def test_keys_generate_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    from healthstack.cli import main

    assert main(["keys", "generate"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(key) == 64
    assert Keyring(bytes.fromhex(key)).active.key_id == key_id_of(bytes.fromhex(key))
