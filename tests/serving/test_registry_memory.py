"""`ModelRegistry`'s LRU bounded by count and by a memory budget, and the encoders' memory estimates.

The registry's eviction runs on fake encoders of stated sizes (its `_load` replaced), so each row of
the table reads as: budget, count bound, the order in which models are asked for, what stays held.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import helpers
import numpy as np
import pytest

from core.artifact.folder import ModelFolder
from core.encoders.student import TOKENIZER_BYTES_PER_TOKEN, StudentEncoder
from core.errors import DistilleryError
from core.serving import service
from core.serving.service import DEFAULT_MEMORY_BUDGET_MB, ModelRegistry, Served

SIZES_MB = {"a": 10, "b": 20, "c": 30}


@dataclass
class FakeEncoder:
    """An encoder that only says how much memory it holds and whether it was released."""

    name: str
    nbytes: int
    released: bool = False
    label: str = "fake"
    fingerprint: str = "fake"

    def release(self) -> None:
        self.released = True


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> list[ModelFolder]:
    root = tmp_path_factory.mktemp("budget")
    return [ModelFolder.create(helpers.tiny_static_model(4, seed=i), helpers.tiny_record(name, dim=4), ["a text"],
                               root / name) for i, name in enumerate(SIZES_MB)]


def registry(folders: list[ModelFolder], budget_mb: float, cache_size: int = 4) -> tuple[ModelRegistry, dict]:
    made: dict[str, FakeEncoder] = {}
    models = ModelRegistry(folders, teacher=None, cache_size=cache_size, memory_budget_mb=budget_mb)

    def load(model: Served) -> FakeEncoder:
        made[model.key] = FakeEncoder(model.key, SIZES_MB[model.key] * 2**20)
        return made[model.key]

    models._load = load  # type: ignore[method-assign]
    return models, made


@pytest.mark.parametrize(("budget_mb", "cache_size", "asked", "held", "over"), [
    (100, 4, "abc", "abc", False),    # everything fits
    (50, 4, "abc", "bc", False),      # 60 MB > 50: the least recently used goes
    (50, 4, "abac", "ac", False),     # a was used after b, so b goes
    (35, 4, "abc", "c", False),       # as many as it takes: a, then b
    (1000, 2, "abc", "bc", False),    # the count still bounds
    (25, 4, "ac", "c", True),         # c alone is over the budget: served, alone, and said so
    (25, 4, "ca", "a", False),        # the over-budget model is evicted for the next one
    (30, 4, "cc", "c", False),        # exactly at the budget is within it; a second get loads nothing
], ids=["fits", "lru", "recency", "several", "count", "alone-over", "over-then-small", "at-budget"])
def test_eviction_by_memory_and_count(folders, budget_mb, cache_size, asked, held, over) -> None:
    models, made = registry(folders, budget_mb, cache_size)
    for name in asked:
        models.get(name)
    assert "".join(models.loaded()) == held
    assert [name for name, _ in models.memory()] == list(held)
    assert [mb for _, mb in models.memory()] == [SIZES_MB[n] for n in held]
    assert (models.over_budget() is not None) == over
    assert {n for n, e in made.items() if e.released} == set(asked) - set(held)  # evicted ones let go
    assert len(made) == len(set(asked))  # a held model is never loaded twice


def test_over_budget_is_logged_and_named(folders, caplog) -> None:
    models, _ = registry(folders, 25)
    with caplog.at_level("WARNING", logger=service.__name__):
        models.get("c")
    assert "over the memory budget of 25 MB" in caplog.text and "DISTILLERY_MEMORY_BUDGET_MB" in caplog.text


@pytest.mark.parametrize(("value", "expected"), [
    (None, DEFAULT_MEMORY_BUDGET_MB), ("", DEFAULT_MEMORY_BUDGET_MB), ("512", 512), (" 64 ", 64),
    ("1.5", "not a whole number"), ("0", "at least 1"), ("lots", "not a whole number"),
])
def test_budget_from_the_environment(monkeypatch, value, expected) -> None:
    if value is None:
        monkeypatch.delenv("DISTILLERY_MEMORY_BUDGET_MB", raising=False)
    else:
        monkeypatch.setenv("DISTILLERY_MEMORY_BUDGET_MB", value)
    if isinstance(expected, int):
        assert ModelRegistry(teacher=None).memory_budget_mb == expected
        assert ModelRegistry(teacher=None, memory_budget_mb=7).memory_budget_mb == 7  # an argument wins
    else:
        with pytest.raises(DistilleryError, match=expected):
            ModelRegistry(teacher=None)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_student_nbytes_counts_table_copy_and_tokenizer(tmp_path: Path, dtype) -> None:
    model = helpers.tiny_static_model(16)
    model.embedding = model.embedding.astype(dtype)
    folder = ModelFolder.create(model, helpers.tiny_record(f"m-{np.dtype(dtype).name}", dim=16), ["a text"],
                                tmp_path / "m")
    encoder = StudentEncoder.open(folder.path)
    rows = encoder.model.embedding.shape[0]
    table = rows * 16 * np.dtype(dtype).itemsize
    widened = rows * 16 * 4 if dtype == np.float16 else 0  # the fast path sums a float32 copy
    tokenizers = 3  # the model's own, and the encoder's two copies (MiniLM's gets the plain-ASCII twin)
    assert encoder.fast.tokenizer.copies == 2
    assert encoder.nbytes == table + widened + tokenizers * encoder.model.tokenizer.get_vocab_size() * TOKENIZER_BYTES_PER_TOKEN

    encoder.release()
    assert StudentEncoder.open(folder.path) is not encoder  # left the cache: a fresh load


def test_the_listing_is_read_again_only_when_the_models_folder_changes(tmp_path, monkeypatch):
    """Every request finds its model through the listing: re-reading each record per request would
    cost more than the student's encode, so it is kept until a model is added or removed."""
    root = tmp_path / "models"
    ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record("first"), ["a text"], root / "first")
    registry = ModelRegistry(models_dir=root, teacher=None)
    reads = []
    listed = ModelFolder.finished
    monkeypatch.setattr(ModelFolder, "finished", classmethod(lambda cls, d=None: reads.append(d) or listed(d)))
    assert registry.names() == ["first", "tiny first"]  # id and record name
    for _ in range(5):
        registry.find("first")
    assert len(reads) == 1
    ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record("second", "2025-02-01T00:00:00+00:00"),
                       ["a text"], root / "second")  # finished after the service started
    assert registry.find("second").key == "second" and len(reads) == 2
    registry.get("second")
    model, encoder = registry.held("second")  # held: found without a thread hop or a file read
    assert model.key == "second" and encoder is not None and registry.held("first") is None
    assert len(reads) == 2
    import shutil

    shutil.rmtree(root / "first")
    with pytest.raises(DistilleryError, match="There is no model 'first'"):
        registry.find("first")
