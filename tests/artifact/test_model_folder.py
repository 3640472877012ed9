"""core.artifact: `ModelFolder` (created atomically, opened by id or path, listed, its collection and
evaluations, old and new), the typed `ModelRecord` and the model card, on tiny real model2vec models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import helpers
import pytest
import yaml

from core.artifact.card import render_card
from core.artifact.folder import (
    COLLECTION_FILE,
    EVALUATION_FILE,
    EVALUATIONS_DIR,
    LEGACY_KEY,
    RECORD_FILE,
    ModelFolder,
)
from core.artifact.record import ModelRecord
from core.errors import DistilleryError

COLLECTION = ["a first text to search", "a second text", "a third one"]


@pytest.fixture()
def models(tmp_path) -> Path:
    """A models folder holding `small-model` (older) and `newer-model`."""
    root = tmp_path / "models"
    ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record("small-model"), COLLECTION,
                       root / "small-model")
    ModelFolder.create(helpers.tiny_static_model(seed=1),
                       helpers.tiny_record("newer-model", created="2025-06-01T00:00:00+00:00"), COLLECTION[:2],
                       root / "newer-model")
    return root


# --- creating a folder -------------------------------------------------------------------------


def test_create_writes_model2vec_files_record_card_and_collection(tmp_path):
    from model2vec import StaticModel

    record = helpers.tiny_record("fresh")
    folder = ModelFolder.create(helpers.tiny_static_model(), record, COLLECTION, tmp_path / "models" / "fresh")
    assert folder.id == "fresh" and folder.record is record
    names = {p.name for p in folder.path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", RECORD_FILE, COLLECTION_FILE, "README.md"} <= names
    assert json.loads((folder.path / RECORD_FILE).read_text()) == record.to_dict()
    assert json.loads((folder.path / COLLECTION_FILE).read_text()) == COLLECTION
    assert StaticModel.from_pretrained(str(folder.path)).dim == 8
    assert [p.name for p in folder.path.parent.iterdir()] == ["fresh"]  # no temporary folder left


class _BrokenModel:
    def save_pretrained(self, path: str) -> None:
        (Path(path) / "model.safetensors").write_bytes(b"half a model")
        raise OSError("disk full")


def test_create_leaves_nothing_when_saving_fails(tmp_path):
    destination = tmp_path / "models" / "broken"
    with pytest.raises(OSError, match="disk full"):
        ModelFolder.create(_BrokenModel(), helpers.tiny_record("broken"), COLLECTION, destination)
    assert not destination.exists()
    assert list((tmp_path / "models").iterdir()) == []


def test_create_refuses_an_existing_destination(tmp_path):
    destination = tmp_path / "models" / "taken"
    destination.mkdir(parents=True)
    (destination / "keep.txt").write_text("mine")
    with pytest.raises(DistilleryError, match="already exists"):
        ModelFolder.create(_BrokenModel(), helpers.tiny_record("taken"), COLLECTION, destination)
    assert (destination / "keep.txt").read_text() == "mine"
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["taken"]


# --- listing and opening -----------------------------------------------------------------------


def test_finished_lists_newest_first_and_skips_hidden_temp_folders(models):
    hidden = models / ".half-model.abc.tmp"
    hidden.mkdir()
    shutil.copy(models / "small-model" / RECORD_FILE, hidden / RECORD_FILE)
    (models / "no-record").mkdir()
    unreadable = models / "unreadable"
    unreadable.mkdir()
    (unreadable / RECORD_FILE).write_text("{not json")
    listed = ModelFolder.finished(models)
    assert [f.id for f in listed] == ["newer-model", "small-model"]
    assert listed[1].path == models / "small-model" and listed[1].size_mb() > 0
    assert ModelFolder.open("small-model", models).path == (models / "small-model").resolve()
    for bad in (hidden.name, "no-record"):
        with pytest.raises(DistilleryError, match="no finished model"):
            ModelFolder.open(bad, models)
    with pytest.raises(DistilleryError, match="cannot be read"):
        ModelFolder.at(unreadable)
    with pytest.raises(DistilleryError, match="not a model folder made by Distillery"):
        ModelFolder.at(models / "no-record")


@pytest.mark.parametrize("bad", ["../x", "../small-model", "..", "small-model/../../etc", "/etc", "", "small-model\x00",
                                 "x" * 5000])
def test_open_refuses_ids_that_climb_out(models, bad):
    with pytest.raises(DistilleryError, match="no finished model"):
        ModelFolder.open(bad, models)


def test_check_refuses_a_damaged_folder_by_its_reason(models):
    from safetensors.numpy import load_file, save_file

    folder = ModelFolder.open("small-model", models)
    folder.check()  # whole
    weights = folder.path / "model.safetensors"
    table = load_file(str(weights))["embeddings"]
    save_file({"embeddings": table[:, :4].copy()}, str(weights))
    with pytest.raises(DistilleryError, match="4 dimensions but its record says 8"):
        folder.check()
    save_file({"embeddings": table[:100].copy()}, str(weights))
    with pytest.raises(DistilleryError, match="100 vectors but its tokenizer has 30,522 tokens"):
        folder.check()
    save_file({"embeddings": table}, str(weights))
    weights.write_bytes(weights.read_bytes()[:-10])  # cut short
    with pytest.raises(DistilleryError, match="is damaged"):
        folder.check()
    (folder.path / "tokenizer.json").unlink()
    with pytest.raises(DistilleryError, match="missing: tokenizer.json"):
        folder.check()


def test_open_reads_the_finished_models_of_the_data_folder(tmp_path):
    from core import settings

    model_id = f"data-folder-{tmp_path.name}"
    ModelFolder.create(helpers.tiny_static_model(), helpers.tiny_record(model_id), COLLECTION,
                       settings.models_dir() / model_id)
    try:
        assert ModelFolder.open(model_id).record.id == model_id
        assert model_id in [f.id for f in ModelFolder.finished()]
    finally:
        shutil.rmtree(settings.models_dir() / model_id)


# --- the record --------------------------------------------------------------------------------


def test_record_round_trips_and_keeps_unknown_keys(models):
    record = ModelFolder.at(models / "small-model").record
    assert isinstance(record, ModelRecord) and record.teacher.dimension == 384
    assert record.method == "vocabulary" and record.title == "tiny small-model" and record.shortfalls == []
    data = {**record.to_dict(), "written_by_a_newer_version": {"x": 1}}
    again = ModelRecord.from_dict(data)
    assert again.extra == {"written_by_a_newer_version": {"x": 1}}
    assert again.to_dict() == data
    assert ModelRecord.from_dict(record.to_dict()) == record


def test_record_title_method_and_shortfalls():
    shortfall = {"domain": "web", "requested": 3, "realised": 1, "message": "'web' asked for 3"}
    record = helpers.tiny_record("m", name="", recipe={"method": "corpus"},
                                 corpus={**helpers.tiny_record("m").corpus, "shortfalls": [shortfall]},
                                 stages={"corpus": {"seconds": 1.25, "peak_rss_mb": 10.0},
                                         "distill": {"seconds": 2.0, "peak_rss_mb": 20.0}})
    assert record.title == "m" and record.method == "corpus" and record.shortfalls == [shortfall]
    assert record.total_seconds() == 3.2  # rounded to a tenth


# --- collection, evaluation and card -----------------------------------------------------------


def test_collection_lives_inside_and_falls_back_to_an_old_job_folder(models, tmp_path):
    folder = ModelFolder.at(models / "small-model")
    assert folder.collection() == COLLECTION
    # a model saved before the collection moved inside its folder: it is read from the job folder
    (folder.path / COLLECTION_FILE).unlink()
    with pytest.raises(DistilleryError, match="missing"):
        folder.collection()
    job_dir = tmp_path / "old-job"
    job_dir.mkdir()
    (job_dir / COLLECTION_FILE).write_text(json.dumps(["from the job folder"]))
    folder.record.job_dir = str(job_dir)
    assert folder.collection() == ["from the job folder"]


def _report() -> dict:
    return helpers.evaluation_report()


def test_write_evaluation_updates_report_record_and_card(models):
    folder = ModelFolder.open("small-model", models)
    assert folder.evaluation() is None
    report = _report()
    folder.write_evaluation(report)
    assert json.loads((folder.path / EVALUATION_FILE).read_text()) == report == folder.evaluation()
    assert ModelFolder.open("small-model", models).record.evaluation == report
    card = (folder.path / "README.md").read_text()
    assert card == render_card(folder.record)
    front = yaml.safe_load(card.split("---")[1])
    assert {r["dataset"]["name"] for r in front["model-index"][0]["results"]} == {"STSBenchmark", "MRPC"}
    assert "## Evaluation" in card and f"{report['retention']['overall']:.1%}" in card
    assert "**viable**" in card and "70× the teacher's throughput" in card and "Gone: missing" in card
    assert not [p for p in folder.path.iterdir() if p.name.startswith(".")]  # atomic writes left nothing


def test_every_evaluation_is_kept_and_listed_newest_first(models):
    folder = ModelFolder.open("small-model", models)
    assert folder.evaluations() == []
    first = helpers.evaluation_report(limit=40)
    second = {**helpers.evaluation_report(limit=None, student={"STSBenchmark": 50.0, "MRPC": 60.0}),
              "tasks": ["MRPC"]}
    first_key = folder.write_evaluation(first)
    second_key = folder.write_evaluation(second)
    listed = folder.evaluations()
    assert [e.key for e in listed] == [second_key, first_key] and second_key > first_key
    assert listed[0].label.endswith("· all rows · MRPC · not viable"), listed[0].label
    assert listed[1].label.endswith("· 40 rows/task · STSBenchmark, MRPC · viable"), listed[1].label
    assert listed[1].label.startswith(f"{first_key[:4]}-{first_key[4:6]}-{first_key[6:8]} ")
    assert folder.evaluation(first_key) == first and folder.evaluation(second_key) == second
    # The newest is still the current report for the card, the record and older readers.
    assert folder.evaluation() == second == json.loads((folder.path / EVALUATION_FILE).read_text())
    assert ModelFolder.open("small-model", models).record.evaluation == second
    assert "**not viable**" in (folder.path / "README.md").read_text()
    assert sorted(p.name for p in (folder.path / EVALUATIONS_DIR).iterdir()) == [f"{first_key}.json",
                                                                                f"{second_key}.json"]
    for bad in ("../distillery", "evaluation.json", "20250101-000000-000000000", ""):
        with pytest.raises(DistilleryError, match="evaluation"):
            folder.evaluation(bad)
    # A history file that cannot be read is passed over; the rest are still listed.
    (folder.path / EVALUATIONS_DIR / "20000101-000000-000000000.json").write_text("{half a report")
    assert [e.key for e in folder.evaluations()] == [second_key, first_key]


def test_a_folder_evaluated_before_the_history_lists_its_one_report_and_keeps_it(models):
    folder = ModelFolder.open("newer-model", models)
    old = helpers.evaluation_report("newer-model", date="2024-01-02")
    (folder.path / EVALUATION_FILE).write_text(json.dumps(old))  # as the earlier version wrote it
    [entry] = folder.evaluations()
    assert entry.key == LEGACY_KEY and entry.label.startswith("2024-01-02 · 40 rows/task")
    assert folder.evaluation(entry.key) == old == folder.evaluation()
    new = helpers.evaluation_report("newer-model", limit=None)
    new_key = folder.write_evaluation(new)
    listed = folder.evaluations()
    assert [e.key for e in listed][0] == new_key and len(listed) == 2  # the old report joined the history
    assert folder.evaluation(listed[1].key) == old and folder.evaluation() == new
    assert not [p for p in folder.path.rglob(".*")]  # every write was atomic: no temporary file left


def test_card_inherits_the_teacher_licence_and_records_the_recipe():
    record = helpers.tiny_record("carded")
    card = render_card(record)
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and front["library_name"] == "model2vec"
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "license: mit" not in card and "**vocabulary** method" in card
    assert '"pca_dims": 64' in card  # the recipe, as JSON
    assert "- none" in card  # no shortfall


def test_card_names_the_text_pairs_trained_on_and_how_many_were_kept():
    training = {"best_epoch": 1, "history": [{"epoch": 0, "validation_loss": 0.5}, {"epoch": 1, "validation_loss": 0.4}],
                "start_share": 0.5, "pairs": {"conala": 2649, "my_pairs.tsv": 120}, "pair_weight": 0.05}
    card = render_card(helpers.tiny_record("paired", training=training))
    assert ("Labelled text pairs were trained with in-batch negatives, weighing 0.05 in the loss; pairs kept per "
            "pair source or uploaded file: `conala` (2,649), `my_pairs.tsv` (120).") in card
    without = render_card(helpers.tiny_record("unpaired", training={**training, "pairs": {}}))
    assert "## Training" in without and "text pairs" not in without


def test_card_says_when_the_student_was_fitted_to_centred_targets():
    training = {"best_epoch": 1, "history": [{"epoch": 0, "validation_loss": 0.5}, {"epoch": 1, "validation_loss": 0.4}],
                "start_share": 0.5, "targets": {"mean_cosine": 0.8134, "centred": True}}
    card = render_card(helpers.tiny_record("centred", training=training))
    assert ("fitted to the teacher's embeddings less their mean (the mean cosine between two texts' teacher "
            "embeddings is 0.81)") in card
    plain = render_card(helpers.tiny_record("plain", training={**training, "targets": {"mean_cosine": 0.03,
                                                                                         "centred": False}}))
    assert "## Training" in plain and "less their mean" not in plain
