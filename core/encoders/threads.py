"""How many threads the encoders may use: one owner for the cores, the limit, and its switches.

The teacher computes in torch's and BLAS's thread pools; the Rust tokenizer in its own pool, which
reads TOKENIZERS_PARALLELISM at every call and has no other switch; the student's encoder in a pool
of Python threads (`core.encoders.student`), whose size is `encode_threads()`. `thread_limit(n)`
sets all of them at once, so "one thread" in a speed figure means one core for every model timed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextvars import ContextVar

# The student's limit is per context (a Compare tab measurement in one request must not slow the
# service's requests in other threads); None means every usable core.
TOKENIZERS_PARALLELISM = "TOKENIZERS_PARALLELISM"  # the Rust tokenizer's switch, read at every call
_encode_threads: ContextVar[int | None] = ContextVar("encode_threads", default=None)


def all_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def encode_threads() -> int:
    """The threads the student's encoder may use now: the innermost `thread_limit`, else every core."""
    return _encode_threads.get() or all_cores()


def serving_process_threads() -> None:
    """For a process that serves (the studio, `python -m serve`): the Rust tokenizer's own pool off,
    unless TOKENIZERS_PARALLELISM already says otherwise. The student's encoder spreads large inputs
    over its own threads, one per core, and the Rust pool's threads spinning beside them cost it a
    fifth of its throughput (docs/benchmarks.md, "Student encode"); a serving process's teacher
    spends its time in torch, not in its tokenizer. The jobs worker keeps the Rust pool: there the
    teacher's tokenizer may feed a GPU."""
    os.environ.setdefault(TOKENIZERS_PARALLELISM, "false")


@contextlib.contextmanager
def tokenizer_parallelism(value: str | None) -> Iterator[None]:
    """TOKENIZERS_PARALLELISM set to `value` (None: unset) for the block, then put back as it was."""
    before = os.environ.get(TOKENIZERS_PARALLELISM)
    _set_tokenizer_parallelism(value)
    try:
        yield
    finally:
        _set_tokenizer_parallelism(before)


def _set_tokenizer_parallelism(value: str | None) -> None:
    if value is None:
        os.environ.pop(TOKENIZERS_PARALLELISM, None)
    else:
        os.environ[TOKENIZERS_PARALLELISM] = value


@contextlib.contextmanager
def thread_limit(threads: int) -> Iterator[None]:
    """At most `threads` threads for torch, BLAS, the Rust tokenizer and the student's encoder.

    The tokenizer's pool cannot be sized, only turned off: at one thread it is off.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous_torch = torch.get_num_threads()
    torch.set_num_threads(threads)
    token = _encode_threads.set(threads)
    try:
        with tokenizer_parallelism("false" if threads == 1 else os.environ.get(TOKENIZERS_PARALLELISM)), \
                threadpool_limits(threads):
            yield
    finally:
        _encode_threads.reset(token)
        torch.set_num_threads(previous_torch)
