"""The model card written next to every distilled model, replacing model2vec's default.

model2vec's own card always says `license: mit`; a student is a derivative of its teacher, so the
card inherits the teacher's licence and records the recipe that made it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import yaml

from core.encoders.endpoint import EndpointSpec, without_url
from core.encoders.teacher import DEFAULT_TEACHER, TeacherInfo
from core.languages import plan_languages
from core.progress import stage_times

if TYPE_CHECKING:
    from core.artifact.record import ModelRecord


def render_card(record: ModelRecord, location: str = "path/or/repo") -> str:
    """The card's text; `location` is what its usage example loads (a Hub repo id once pushed)."""
    teacher = record.teacher
    recipe = record.recipe
    manifest = record.corpus
    front: dict[str, Any] = {
        "library_name": "model2vec",
        "license": teacher.licence or "other",
        "tags": ["model2vec", "static-embeddings", "sentence-transformers", "distillery"],
        "pipeline_tag": "sentence-similarity",
    }
    endpoint = EndpointSpec.from_dict(teacher.endpoint) if teacher.endpoint else None
    if recipe.get("language", "en") != "en":  # a French or cross-lingual student says so (English cards as before)
        front["language"] = list(plan_languages(recipe["language"]))
    if teacher.from_hub or teacher.name == DEFAULT_TEACHER:  # a Hub id: not a folder, an endpoint or a package
        front["base_model"] = teacher.name
    evaluation = record.evaluation
    if evaluation:
        front["model-index"] = _model_index(record.title, evaluation)
    rows = "\n".join(
        f"| {d} | {v['requested_share']:.1%} | {v['realised_share']:.1%} | {v['realised']:,}{_per_language(manifest, v)} | "
        f"{', '.join(s.get('name', '?') for s in v.get('sources', [])) or '—'} |"
        for d, v in manifest["domains"].items()
    )
    shortfalls = "\n".join(f"- {s['message']}" for s in manifest["shortfalls"]) or "- none"
    training = _training_section(record.training, record.stages)
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {record.title}

A static [Model2Vec](https://github.com/MinishLab/model2vec) embedding model distilled by Distillery
from {_teacher_line(teacher, endpoint)} with the
**{recipe['method']}** method.

```python
from model2vec import StaticModel
model = StaticModel.from_pretrained({json.dumps(location)})
embeddings = model.encode(["It's dangerous to go alone!"])
```

## Corpus ({manifest['size']:,} texts, content sha256 `{manifest['content_sha256'][:16]}…`)

| domain | requested | realised | texts | sources |
|---|---|---|---|---|
{rows}

Shortfalls:
{shortfalls}

{training}{_evaluation_section(evaluation)}## Recipe

```json
{json.dumps(without_url(recipe), indent=2)}
```

## Licence

{_licence_section(teacher, endpoint)}
"""


def _per_language(manifest: dict[str, Any], domain: dict[str, Any]) -> str:
    """A French or cross-lingual corpus's texts per language, e.g. " (45 en, 45 fr)"; nothing for English."""
    if manifest.get("language", "en") == "en" or not domain.get("languages"):
        return ""
    return " (" + ", ".join(f"{n:,} {language}" for language, n in domain["languages"].items()) + ")"


def _teacher_line(teacher: TeacherInfo, endpoint: EndpointSpec | None) -> str:
    """The teacher as the card names it: an endpoint by kind and model only (never its URL or key), a
    package teacher by its model and the package and version it came from."""
    if teacher.package is not None:
        from core.encoders.package import package_title

        return (f"**{teacher.name}**, {package_title(teacher)} (an installed package's embedding function; "
                f"fingerprint `{teacher.fingerprint}`)")
    if endpoint is None:
        return f"**{teacher.name}** (teacher weights `{teacher.fingerprint}`)"
    return f"the embeddings API **{endpoint.title}** (reached over HTTP; no weights were used)"


def _licence_section(teacher: TeacherInfo, endpoint: EndpointSpec | None) -> str:
    if endpoint is None:
        return (f"The student is a derivative of its teacher and is released under the teacher's licence\n"
                f"(`{teacher.licence or 'unknown: check the teacher'}`).")
    return ("The teacher's embeddings came from an API (" + endpoint.title + "). Its licence and terms of use, "
            "including whether\nthey allow training another model on its outputs, are yours to check before "
            "you use or share this model.")


def _training_section(training: dict[str, Any] | None, stages: dict[str, dict[str, float]]) -> str:
    """The corpus method's training curve and stage times (empty for the vocabulary method)."""
    if not training:
        return ""
    rows = "\n".join(f"| {h['epoch']} | {h['validation_loss']:.4f} |" for h in training["history"])
    times = stage_times(stages)
    share = float(training.get("start_share", 0.0))
    tokenizer = training.get("student_tokenizer")  # a teacher without weights: the tokenizer chosen for it
    lent = (f"The student's tokenizer is `{tokenizer}` (the teacher has no weights to lend its own).\n"
            if tokenizer else "")
    lent += _pairs_line(training) + _centred_line(training)
    return f"""## Training

Static vectors, token weights and a linear map (folded into the table) trained to reproduce the
teacher's sentence embeddings of the corpus; the best epoch on the held-back slice is kept
(epoch {training['best_epoch']}; epoch 0 is the fitted starting point). The shipped table is
{share:.0%} that fitted start and {1 - share:.0%} the trained table (a weight-space ensemble).
{lent}
| epoch | validation loss |
|---|---|
{rows}

Stage times: {times}

"""


def _centred_line(training: dict[str, Any]) -> str:
    """Whether the student was fitted to the teacher's embeddings less their mean, and the cone behind it."""
    fitted = training.get("targets") or {}
    if not fitted.get("centred"):
        return ""
    return (f"The student was fitted to the teacher's embeddings less their mean (the mean cosine between two "
            f"texts' teacher embeddings is {fitted.get('mean_cosine', float('nan')):.2f}).\n")


def _pairs_line(training: dict[str, Any]) -> str:
    """The text pairs trained with in-batch negatives, per pair source or uploaded file, when any were."""
    pairs = training.get("pairs") or {}
    if not pairs:
        return ""
    kept = ", ".join(f"`{name}` ({count:,})" for name, count in pairs.items())
    weight = training.get("pair_weight")
    weighed = f", weighing {weight:g} in the loss" if isinstance(weight, (int, float)) else ""
    return (f"Labelled text pairs were trained with in-batch negatives{weighed}; pairs kept per pair source "
            f"or uploaded file: {kept}.\n")


_HF_TASK = {"STS": "sentence-similarity", "Classification": "text-classification",
            "PairClassification": "text-classification", "Retrieval": "text-retrieval",
            "BitextMining": "translation"}


def _model_index(name: str, evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """Hugging Face `model-index` results: one entry per scored task, its mteb main score."""
    from core.evaluation.tasks import MAIN_SCORES

    scores = evaluation["student_scores"]
    results = [{
        "task": {"type": _HF_TASK.get(scores["task_types"][task], "feature-extraction")},
        "dataset": {"name": task, "type": f"distillery-local/{task}", "split": "test"},
        "metrics": [{"type": MAIN_SCORES.get(scores["task_types"][task], "main_score"), "value": value}],
    } for task, value in scores["tasks"].items()]
    return [{"name": name, "results": results}]


def _evaluation_section(evaluation: dict[str, Any] | None) -> str:
    """Teacher and student per task, retention, speed-up and the verdict (empty before an evaluation)."""
    if not evaluation:
        return ""
    student, teacher, kept = evaluation["student_scores"], evaluation["teacher_scores"], evaluation["retention"]
    rows = "\n".join(
        f"| {task} | {student['task_types'][task]} | {teacher['tasks'].get(task, float('nan')):.2f} | {score:.2f} | "
        f"{kept['tasks'].get(task, float('nan')):.1%} |" for task, score in student["tasks"].items())
    skipped = "\n".join(f"- {task}: {why}" for task, why in student.get("skipped", {}).items()) or "- none"
    speed = evaluation.get("speed")
    speed_line = (f"{speed['speedup']:.0f}× the teacher's throughput on CPU ({speed['student_texts_per_s']:,.0f} "
                  f"vs {speed['teacher_texts_per_s']:,.0f} texts/s, {speed['threads']} threads, "
                  f"{speed['texts']} corpus passages)" if speed else "not measured")
    decision = evaluation["verdict"]
    rows_note = "all rows" if evaluation.get("limit") is None else f"a seeded sample of {evaluation['limit']} rows per task"
    return f"""## Evaluation ({evaluation['date']}, mteb {evaluation['mteb_version']}, {rows_note})

| task | type | teacher | student | retention |
|---|---|---|---|---|
{rows}

Retention (mean of task-type means): **{kept['overall']:.1%}**; speed-up: {speed_line}.
Verdict: **{decision['verdict']}** (weakest task type: {decision['weakest_type']},
{decision['weakest_retention']:.1%} retained){''.join('; ' + r for r in decision['reasons'])}.

Skipped tasks:
{skipped}

"""
