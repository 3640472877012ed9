"""core.keyring: a key typed in the page travels sealed, opens only with this run's sealing key, and
is held only inside `holding`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core.errors import DistilleryError
from core.keyring import (
    SEALED_FILE,
    SEALING_KEY_ENV,
    ensure_sealing_key,
    forget,
    held_key,
    holding,
    seal_into,
    unseal_from,
)

KEY = "sk-typed-3f9a1c0e77d2b4a5"


def test_sealed_keys_open_with_the_same_sealing_key_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(SEALING_KEY_ENV, "this run's key")
    seal_into(tmp_path, {"endpoint:abc": KEY, "hub-token": ""})  # an empty field is not sealed
    blob = (tmp_path / SEALED_FILE).read_bytes()
    assert KEY.encode() not in blob and b"endpoint:abc" not in blob  # neither the key nor what it opens
    assert stat.S_IMODE((tmp_path / SEALED_FILE).stat().st_mode) == 0o600
    assert unseal_from(tmp_path) == {"endpoint:abc": KEY}

    monkeypatch.setenv(SEALING_KEY_ENV, "the next run's key")  # the studio restarted with a new one
    with pytest.raises(DistilleryError, match="held by a studio run that has ended.*type it again"):
        unseal_from(tmp_path)
    monkeypatch.delenv(SEALING_KEY_ENV)
    with pytest.raises(DistilleryError, match=f"no sealing key is set \\({SEALING_KEY_ENV}\\)"):
        seal_into(tmp_path, {"endpoint:abc": KEY})

    forget(tmp_path)
    assert not (tmp_path / SEALED_FILE).exists() and unseal_from(tmp_path) == {}
    seal_into(tmp_path, {"hub-token": ""})  # nothing to seal: no file, and no sealing key needed
    assert not (tmp_path / SEALED_FILE).exists()


def test_ensure_sealing_key_keeps_a_key_the_deployment_set(monkeypatch) -> None:
    monkeypatch.setenv(SEALING_KEY_ENV, "set by the deployment")
    ensure_sealing_key()
    import os

    assert os.environ[SEALING_KEY_ENV] == "set by the deployment"
    monkeypatch.delenv(SEALING_KEY_ENV)
    ensure_sealing_key()
    first = os.environ[SEALING_KEY_ENV]
    assert len(first) >= 40
    monkeypatch.delenv(SEALING_KEY_ENV)
    ensure_sealing_key()
    assert os.environ[SEALING_KEY_ENV] != first  # random per run


def test_a_key_is_held_inside_the_block_only_and_blocks_nest() -> None:
    assert held_key("endpoint:abc") is None
    with holding({"endpoint:abc": KEY}):
        assert held_key("endpoint:abc") == KEY
        with holding({"hub-token": "hf_x", "endpoint:abc": ""}):  # an empty value does not hide the outer one
            assert held_key("hub-token") == "hf_x" and held_key("endpoint:abc") == KEY
        assert held_key("hub-token") is None
    assert held_key("endpoint:abc") is None
