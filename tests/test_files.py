"""core.files: writes that are whole or absent, with the permissions a plain write would give."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from core.files import folder_atomically, save_array, texts_digest, write_atomically, write_json


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    write_json(path, {"v": 1})

    def half_then_fail(handle) -> None:
        handle.write(b'{"v": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomically(path, half_then_fail)
    assert path.read_text() == '{\n  "v": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_files_and_folders_get_the_umask_permissions(tmp_path: Path) -> None:
    """Model folders are read by other processes and users (a Space, consumers on other machines):
    they must not come out private the way `tempfile`'s files and folders do."""
    save_array(tmp_path / "a.npy", np.arange(3))
    with folder_atomically(tmp_path / "model") as folder:
        write_json(folder / "record.json", {})
    expected_file, expected_dir = 0o666 & ~_umask(), 0o777 & ~_umask()
    assert (tmp_path / "a.npy").stat().st_mode & 0o777 == expected_file
    assert (tmp_path / "model").stat().st_mode & 0o777 == expected_dir
    assert (tmp_path / "model" / "record.json").stat().st_mode & 0o777 == expected_file
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.arange(3))


def test_a_folder_is_renamed_into_place_whole_or_not_at_all(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with folder_atomically(tmp_path / "model") as folder:
            (folder / "part").write_text("half")
            raise RuntimeError("cancelled")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "model").mkdir()
    with pytest.raises(FileExistsError):
        with folder_atomically(tmp_path / "model"):
            pass


def test_texts_digest_depends_on_order_and_boundaries() -> None:
    assert texts_digest(["a", "b"]) != texts_digest(["b", "a"])
    assert texts_digest(["ab"]) != texts_digest(["a", "b"])
