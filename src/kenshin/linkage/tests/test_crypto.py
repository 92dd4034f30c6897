"""The vault's cipher and blind index (MN-04): what decrypts, what must not, where keys come from.

The check-digit properties (100 % of wrong check digits rejected, 0 valid ones rejected) are
in test_mynumber.py; here the blind index gets the matching property: every spelling of a
number finds the same row.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenshin.core.mynumber import check_digit
from kenshin.linkage import crypto, keys, mynumber

K1, K2, KI = bytes([1]) * 32, bytes([2]) * 32, bytes([9]) * 32
NUMBER = "983205673214"  # the reference vector of reference/domain.md §6.1
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
eleven = st.text(alphabet="0123456789", min_size=11, max_size=11)


def ring(keys_=None, active=1, index=KI) -> crypto.Keyring:
    return crypto.Keyring(keys_ or {1: K1, 2: K2}, active, index)


@pytest.fixture
def no_env_keys(monkeypatch, settings):
    for name in crypto.ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    settings.LINKAGE_KEY_FILE = ""
    crypto.reset_keyring()
    yield settings
    crypto.reset_keyring()


# ------------------------------------------------------------------------- cipher


def test_round_trip_under_the_active_key():
    r = ring()
    assert r.decrypt(r.encrypt(NUMBER, 42), 42) == NUMBER


def test_blob_is_key_id_byte_then_nonce_then_sealed_text():
    r = ring(active=2)
    blob = r.encrypt(NUMBER, 7)
    assert blob[0] == 2
    assert len(blob) == 1 + 12 + len(NUMBER) + 16
    assert NUMBER.encode() not in blob


def test_the_same_number_encrypts_differently_each_time():
    r = ring()
    assert r.encrypt(NUMBER, 7) != r.encrypt(NUMBER, 7)


def test_explicit_key_id_is_used():
    r = ring(active=2)
    blob = r.encrypt(NUMBER, 7, key_id=1)
    assert blob[0] == 1
    assert r.decrypt(blob, 7) == NUMBER


def test_ciphertext_copied_to_another_row_does_not_decrypt():
    r = ring()
    blob = r.encrypt(NUMBER, 100)
    with pytest.raises(crypto.DecryptError) as err:
        r.decrypt(blob, 101)
    assert NUMBER not in str(err.value)


def test_any_altered_byte_fails_to_decrypt():
    r = ring()
    blob = r.encrypt(NUMBER, 5)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(crypto.DecryptError):
            r.decrypt(bytes(bad), 5)


def test_a_truncated_blob_fails_to_decrypt():
    r = ring()
    blob = r.encrypt(NUMBER, 5)
    for cut in (0, 1, 13, 28, len(blob) - 1):
        with pytest.raises(crypto.DecryptError):
            r.decrypt(blob[:cut], 5)


def test_wrong_key_id_fails():
    r = ring()
    blob = bytearray(r.encrypt(NUMBER, 5, key_id=1))
    blob[0] = 2  # claims key 2, was sealed under key 1
    with pytest.raises(crypto.DecryptError):
        r.decrypt(bytes(blob), 5)


def test_missing_key_fails_and_names_the_key_id_only():
    blob = ring().encrypt(NUMBER, 5, key_id=1)
    without_1 = ring({2: K2}, active=2)
    with pytest.raises(crypto.DecryptError) as err:
        without_1.decrypt(blob, 5)
    assert "鍵番号 1" in str(err.value)


def test_same_key_material_under_another_keyring_decrypts():
    """What a restart (or the server process) sees: the keys, not the object, decide."""
    blob = ring().encrypt(NUMBER, 5)
    assert ring().decrypt(memoryview(blob), 5) == NUMBER


@given(eleven, st.integers(min_value=1, max_value=2**40))
def test_round_trip_property(d11, row_id):
    number = d11 + str(check_digit(d11))
    r = ring()
    assert r.decrypt(r.encrypt(number, row_id), row_id) == number


# ------------------------------------------------------------------------- keys


@pytest.mark.parametrize("length", [16, 24, 31, 33, 64])
def test_only_256_bit_keys_are_accepted(length):
    with pytest.raises(crypto.KeysUnavailable) as err:
        crypto.Keyring({1: bytes(length)}, 1, KI)
    assert "256ビット" in str(err.value)
    with pytest.raises(crypto.KeysUnavailable):
        crypto.Keyring({1: K1}, 1, bytes(length))


def test_index_key_must_differ_from_every_encryption_key():
    with pytest.raises(crypto.KeysUnavailable) as err:
        crypto.Keyring({1: K1, 2: K2}, 1, K2)
    assert "検索索引" in str(err.value)


def test_active_key_must_exist():
    with pytest.raises(crypto.KeysUnavailable):
        crypto.Keyring({1: K1}, 2, KI)


def test_repr_shows_ids_not_keys():
    text = repr(ring())
    assert "active=1" in text
    for key in (K1, K2, KI):
        assert base64.b64encode(key).decode() not in text
        assert key.hex() not in text


def test_test_keys_come_from_the_environment():
    crypto.reset_keyring()
    r = crypto.keyring()
    assert r.source == "environment"
    assert r.key_ids == {1, 2}
    assert r.active_key_id == int(os.environ[crypto.ENV_ACTIVE])
    assert crypto.keyring() is r  # cached


def test_environment_keys_of_the_wrong_length_are_refused(monkeypatch):
    monkeypatch.setenv(crypto.ENV_KEYS, "1:" + base64.b64encode(bytes(16)).decode())
    crypto.reset_keyring()
    try:
        with pytest.raises(crypto.KeysUnavailable) as err:
            crypto.keyring()
        assert "128ビット" in str(err.value)
    finally:
        crypto.reset_keyring()


def test_environment_without_index_key_says_which_variable(monkeypatch):
    monkeypatch.delenv(crypto.ENV_INDEX)
    crypto.reset_keyring()
    try:
        with pytest.raises(crypto.KeysUnavailable) as err:
            crypto.keyring()
        assert crypto.ENV_INDEX in str(err.value)
    finally:
        crypto.reset_keyring()


def test_no_keys_anywhere_says_what_to_set(no_env_keys):
    with pytest.raises(crypto.KeysUnavailable) as err:
        crypto.keyring()
    message = str(err.value)
    assert "KENSHIN_LINKAGE_KEYS" in message
    assert "KENSHIN_LINKAGE_KEY_FILE" in message
    assert "docs/linkage.md" in message


def test_keys_never_come_from_secret_key(no_env_keys, settings, tmp_path):
    settings.LINKAGE_KEY_FILE = str(tmp_path / "k.json")
    keys.init()
    before = crypto.keyring().blind_index(NUMBER)
    settings.SECRET_KEY = "something-else-entirely-" * 3
    crypto.reset_keyring()
    assert crypto.keyring().blind_index(NUMBER) == before


def test_key_file_readable_by_others_is_refused(no_env_keys, settings, tmp_path):
    path = tmp_path / "k.json"
    settings.LINKAGE_KEY_FILE = str(path)
    keys.init()
    assert (path.stat().st_mode & 0o777) == 0o600
    assert crypto.keyring().source.startswith("file:")
    for mode in (0o640, 0o604, 0o620):
        path.chmod(mode)
        crypto.reset_keyring()
        with pytest.raises(crypto.KeysUnavailable) as err:
            crypto.keyring()
        assert "chmod 600" in str(err.value)


def test_key_file_with_a_short_key_is_refused(no_env_keys, settings, tmp_path):
    path = tmp_path / "k.json"
    settings.LINKAGE_KEY_FILE = str(path)
    short, index = base64.b64encode(bytes(16)).decode(), base64.b64encode(KI).decode()
    path.write_text(json.dumps({"active": 1, "keys": {"1": short}, "index_key": index}))
    path.chmod(0o600)
    with pytest.raises(crypto.KeysUnavailable) as err:
        crypto.keyring()
    assert "256ビット" in str(err.value)


# ------------------------------------------------------------------------- blind index


def test_blind_index_is_32_bytes_and_stable():
    a, b = ring(), ring()
    assert len(a.blind_index(NUMBER)) == 32
    assert a.blind_index(NUMBER) == b.blind_index(NUMBER)


def test_blind_index_depends_on_the_index_key_only():
    assert ring().blind_index(NUMBER) == ring({3: K2}, active=3).blind_index(NUMBER)
    assert ring().blind_index(NUMBER) != ring(index=bytes([8]) * 32).blind_index(NUMBER)


def test_blind_index_refuses_what_is_not_twelve_digits():
    with pytest.raises(mynumber.InvalidMyNumber):
        ring().blind_index("12345")


@given(eleven, st.sampled_from(["", "-", " ", "－", "　", "‐"]), st.booleans())
def test_every_spelling_of_a_number_has_the_same_blind_index(d11, sep, full):
    number = d11 + str(check_digit(d11))
    spelled = sep.join([number[:4], number[4:8], number[8:]])
    if full:
        spelled = spelled.translate(FULLWIDTH)
    r = ring()
    assert r.blind_index(mynumber.normalize(spelled)) == r.blind_index(number)
    assert r.blind_index(spelled) == r.blind_index(number)
