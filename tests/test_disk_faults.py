"""core.files against a disk that refuses writes: a real kernel refusal wherever one can be had
without root-only tricks, and one message naming the folder (and, for a full disk, the sizes).

- EFBIG: a child process under `RLIMIT_FSIZE` (SIGXFSZ ignored, so the write returns the error
  instead of killing the process) writes past the limit, as a full small filesystem would stop it.
- EACCES: a child process without write permission: as root (where permission bits never block a
  write) the child drops to the `nobody` user first; otherwise the folder is made read-only.
- ENOSPC: no full filesystem can be mounted without root, so the writer itself raises ENOSPC, which
  checks the message and the clean-up; the kernel paths above check the same code end to end.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.errors import DistilleryError
from core.files import DiskError, folder_atomically, free_bytes, save_array, write_atomically, write_json, write_text

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534

CHILD = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    import numpy as np
    from core.errors import DistilleryError
    from core.files import folder_atomically, save_array, write_json
    root = Path(sys.argv[1])
    if len(sys.argv) > 2:  # root gives up its rights (after Python has started from root's own folders)
        os.setgid(int(sys.argv[2]))
        os.setuid(int(sys.argv[2]))
    outcomes = {}
    def attempt(name, write):
        try:
            write()
            outcomes[name] = "written"
        except DistilleryError as exc:
            outcomes[name] = str(exc)
    attempt("array", lambda: save_array(root / "shard-0001.npy", np.ones(500_000, dtype=np.float32)))
    def model():
        from safetensors.numpy import save_file
        with folder_atomically(root / "models" / "big") as tmp:
            (tmp / "README.md").write_bytes(b"x" * 600_000)  # a library's own writers, Python's and Rust's
            save_file({"embeddings": np.ones((1000, 500), np.float32)}, str(tmp / "model.safetensors"))
    attempt("model", model)
    attempt("small", lambda: write_json(root / "small.json", {"ok": True}))
    print(json.dumps(outcomes))
""")


def _run_child(folder: Path, preexec=None, user: int | None = None) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder), *([str(user)] if user is not None else [])],
                          capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=preexec)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _visible(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _file_size_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_file_size_limit_fails_the_big_writes_with_the_size_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "models" / "saved").mkdir(parents=True)
    (tmp_path / "models" / "saved" / "model.safetensors").write_bytes(b"s" * 1000)
    before = _visible(tmp_path)
    outcomes = _run_child(tmp_path, _file_size_limit(1_000_000))
    assert f"Could not write to {tmp_path}:" in outcomes["array"]
    assert "the write needed about 2.0 MB" in outcomes["array"] and "(1.0 MB)" in outcomes["array"]
    assert f"Could not write to {tmp_path / 'models'}:" in outcomes["model"]  # the visible folder, not the temporary
    assert "the write needed at least 0.6 MB" in outcomes["model"], outcomes  # what reached the disk
    assert outcomes["small"] == "written"
    assert _visible(tmp_path) == sorted([*before, "small.json"])  # no partial file, no hidden temporary
    assert (tmp_path / "models" / "saved" / "model.safetensors").read_bytes() == b"s" * 1000


def test_a_folder_the_process_may_not_write_is_named() -> None:
    # Not below pytest's tmp_path: as root that is a private folder `nobody` could not even look into.
    folder = Path(tempfile.mkdtemp(prefix="distillery-read-only-"))
    user = None
    if os.geteuid() == 0:
        folder.chmod(0o755)  # root's folder: `nobody` may read it but not write it
        user = NOBODY
    else:
        folder.chmod(0o555)
    try:
        outcomes = _run_child(folder, user=user)
        for name in ("array", "model", "small"):
            assert outcomes[name].startswith(f"Could not write to {folder}"), outcomes
            assert "permission denied" in outcomes[name]
        assert _visible(folder) == []
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_a_full_disk_names_the_folder_the_size_needed_and_the_space_free(tmp_path: Path) -> None:
    target = tmp_path / "corpus" / "corpus.jsonl"
    write_text(target, "old\n")
    payload = b"x" * 3_000_000

    def fill_then_fail(handle) -> None:
        handle.write(payload[:1_500_000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DiskError) as caught:
        write_atomically(target, fill_then_fail, size=len(payload))
    message = str(caught.value)
    assert message.startswith(f"Could not write to {target.parent}: the disk is full; the write needed about 3.0 MB")
    free = free_bytes(target.parent)
    assert free is not None and "is free" in message
    assert isinstance(caught.value, DistilleryError) and caught.value.code == errno.ENOSPC
    assert target.read_text() == "old\n" and _visible(tmp_path) == ["corpus", "corpus/corpus.jsonl"]

    with pytest.raises(DiskError, match="at least 1.5 MB"):  # size unknown: what reached the disk is a floor
        write_atomically(target, fill_then_fail)


def test_a_full_disk_inside_a_model_folder_names_the_models_folder(tmp_path: Path) -> None:
    with pytest.raises(DiskError) as caught:
        with folder_atomically(tmp_path / "models" / "m") as tmp:
            write_json(tmp / "record.json", {"a": 1})
            save_array(tmp / "big.npy", np.zeros(10, dtype=np.float32))
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    assert str(caught.value).startswith(f"Could not write to {tmp_path / 'models'}: the disk quota is used up")
    assert _visible(tmp_path) == ["models"]


def test_other_os_errors_pass_through(tmp_path: Path) -> None:
    def broken(handle) -> None:
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError) as caught:
        write_atomically(tmp_path / "x", broken)
    assert not isinstance(caught.value, DistilleryError) and _visible(tmp_path) == []
