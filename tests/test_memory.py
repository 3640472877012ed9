"""core.memory: a recipe's peak memory from the measured per-stage figures, and the refusal before queueing.

The estimate must agree with every measured peak in bench/results (within `MARGIN`), grow with the
corpus, charge a larger teacher and vocabulary, and refuse a recipe that does not fit with the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.encoders.teacher import TeacherInfo, resolve_teacher
from core.errors import DistilleryError
from core.memory import (
    MEMORY_LIMIT_ENV,
    STAGE_MEMORY,
    TEXTS_MB_PER_1K,
    _cgroup_left_mb,
    available_mb,
    check_memory,
    estimate_peak,
)
from core.recipe import Recipe

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
MARGIN = 0.05  # the estimate is within 5% of each measured peak


@pytest.fixture(scope="module")
def minilm() -> TeacherInfo:
    return resolve_teacher(None)  # the teacher of every measurement


def _close(estimate: float, measured: float) -> bool:
    return abs(estimate - measured) <= MARGIN * measured


def test_the_estimate_matches_the_pipeline_bench_at_every_size(minilm) -> None:
    runs = json.loads((RESULTS / "pipeline.json").read_text())["runs"]
    assert len(runs) >= 3
    for run in runs.values():
        estimate = estimate_peak(Recipe(method="corpus", corpus_size=run["texts"]), minilm)
        assert _close(estimate.peak_mb, run["peak_rss_mb"]), (run["texts"], estimate.peak_mb, run["peak_rss_mb"])
        assert estimate.peak_stage == "featurize"
        assert _close(estimate.stages["corpus"], run["stages"]["corpus"]["peak_rss_mb"])


def test_the_estimate_matches_the_studio_bench(minilm) -> None:
    studio = json.loads((RESULTS / "studio.json").read_text())
    estimate = estimate_peak(Recipe(method="vocabulary", corpus_size=studio["corpus_size"]), minilm)
    assert _close(estimate.peak_mb, studio["peak_rss_mb"]), (estimate.peak_mb, studio["peak_rss_mb"])
    for stage in ("corpus", "vocabulary", "distill"):
        assert _close(estimate.stages[stage], studio["stages"][stage]["peak_rss_mb"]), stage


def test_the_training_side_matches_the_memory_bench_up_to_a_million_texts(minilm) -> None:
    """bench/memory.py measured pca and training without the texts list; the job holds it too."""
    for result in json.loads((RESULTS / "memory.json").read_text())["results"]:
        estimate = estimate_peak(Recipe(method="corpus", corpus_size=result["rows"]), minilm)
        texts = TEXTS_MB_PER_1K * result["rows"] / 1000
        assert _close(estimate.stages["train"] - texts, result["train_mb"]), result
        assert _close(estimate.stages["pca"] - texts, result["pca_mb"]), result


@pytest.mark.parametrize("method", ["vocabulary", "corpus"])
def test_the_estimate_grows_with_the_corpus(minilm, method: str) -> None:
    sizes = [1_000, 10_000, 100_000, 1_000_000, 2_000_000, 10_000_000]
    estimates = [estimate_peak(Recipe(method=method, corpus_size=n), minilm) for n in sizes]
    peaks = [e.peak_mb for e in estimates]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks), peaks
    for smaller, larger in zip(estimates, estimates[1:]):
        assert all(larger.stages[s] >= smaller.stages[s] for s in smaller.stages)
    assert set(estimates[0].stages) <= set(STAGE_MEMORY)


def test_a_larger_teacher_and_vocabulary_cost_more(minilm, tmp_path: Path) -> None:
    """A Gemma-sized teacher: 262,144 tokens, 768 dimensions, 600 MB of bfloat16 weights (1.2 GB as float32)."""
    (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 262_144, "torch_dtype": "bfloat16"}))
    with open(tmp_path / "model.safetensors", "wb") as handle:
        handle.truncate(600 * 1024 * 1024)  # sparse: the size is all the estimate reads
    big = TeacherInfo(name="big", source=str(tmp_path), dimension=768, licence=None, fingerprint="x", is_local=True)
    recipe = Recipe(method="vocabulary", corpus_size=20_000)
    small, large = estimate_peak(recipe, minilm), estimate_peak(recipe, big)
    teacher = 1200 - 86.7
    table = ((262_144 + 20_000) * 768 - (30_522 + 20_000) * 384) * 4 / 2**20
    assert large.stages["distill"] == pytest.approx(small.stages["distill"] + teacher + 3 * table, abs=0.2)
    assert large.stages["corpus"] == small.stages["corpus"]  # no teacher, no table
    fewer_words = Recipe(method="vocabulary", corpus_size=20_000, distill={"max_vocabulary_size": 1_000})
    assert estimate_peak(fewer_words, big).peak_mb < large.peak_mb


def test_the_available_memory_is_the_override_or_the_smaller_of_the_machine_and_the_cgroup(monkeypatch,
                                                                                          tmp_path: Path) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1500")
    assert available_mb() == (1500.0, f"{MEMORY_LIMIT_ENV} allows")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(DistilleryError, match="must be a number of megabytes"):
        available_mb()
    monkeypatch.delenv(MEMORY_LIMIT_ENV)
    free, basis = available_mb()
    assert 0 < free < float("inf") and basis in ("this machine has free", "this container's memory limit leaves")

    (tmp_path / "memory.max").write_text("max\n")
    assert _cgroup_left_mb(tmp_path) is None
    (tmp_path / "memory.max").write_text(str(4 * 2**30))
    (tmp_path / "memory.current").write_text(str(2**30))
    assert _cgroup_left_mb(tmp_path) == 3072.0


def test_a_recipe_over_the_memory_is_refused_with_the_estimate(minilm, monkeypatch) -> None:
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "4000")
    with pytest.raises(DistilleryError) as refused:
        check_memory(Recipe(method="corpus", corpus_size=2_000_000), minilm)
    message = str(refused.value)
    assert message.startswith("This recipe needs about 9.7 GB of memory at its peak (the corpus method on "
                              "2,000,000 texts: featurize 9.7 GB, "), message
    assert "DISTILLERY_MEMORY_LIMIT_MB allows 3.9 GB. Use a smaller corpus" in message
    assert check_memory(Recipe(method="vocabulary", corpus_size=20_000), minilm).peak_mb < 4000
