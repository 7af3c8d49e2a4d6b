"""Tests for tasks.privacy: patient ids only ever leave as salted hashes."""

from __future__ import annotations

import stat

import pytest

from tasks.privacy import (
    PSEUDONYM_LENGTH,
    load_or_create_salt,
    pseudonymise,
    salt_file,
    salt_fingerprint,
)


def test_pseudonymise_is_stable_for_one_salt(salt):
    first = pseudonymise("MRN-0042", salt)

    assert first == pseudonymise("MRN-0042", salt)
    assert len(first) == PSEUDONYM_LENGTH
    assert int(first, 16) >= 0


def test_pseudonymise_differs_between_salts_and_patients(salt):
    other_salt = b"1" * 64

    assert pseudonymise("MRN-0042", salt) != pseudonymise("MRN-0042", other_salt)
    assert pseudonymise("MRN-0042", salt) != pseudonymise("MRN-0043", salt)


def test_pseudonymise_ignores_surrounding_space_and_keeps_empty_empty(salt):
    assert pseudonymise("  MRN-0042\t", salt) == pseudonymise("MRN-0042", salt)
    assert pseudonymise("", salt) == ""
    assert pseudonymise("   ", salt) == ""


def test_pseudonymise_does_not_contain_identifier(salt):
    assert "0042" not in pseudonymise("0042", salt)


def test_load_or_create_salt_creates_private_file_once(tmp_path):
    path = tmp_path / "secrets" / "salt"

    created = load_or_create_salt(path)

    assert len(created) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_salt(path) == created


def test_load_or_create_salt_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LATERALITY_SALT_FILE", str(tmp_path / "from-env"))

    load_or_create_salt()

    assert salt_file() == tmp_path / "from-env"
    assert (tmp_path / "from-env").exists()


def test_load_or_create_salt_refuses_short_salt(tmp_path):
    path = tmp_path / "salt"
    path.write_text("abc\n")

    with pytest.raises(ValueError, match="at least 32 hex characters"):
        load_or_create_salt(path)


def test_salt_fingerprint_changes_with_salt_without_revealing_it(salt):
    fingerprint = salt_fingerprint(salt)

    assert fingerprint != salt_fingerprint(b"1" * 64)
    assert fingerprint not in salt.decode()
    assert len(fingerprint) == PSEUDONYM_LENGTH
