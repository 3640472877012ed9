"""Bad input through the running app's API: every case gets a sentence a person understands, nothing
crashes the app or the worker, and no saved model is lost or damaged.

One table (`CASES`) drives one test. A case names the endpoint (gradio_client `api_name`), builds its
inputs from `Env` (the generated uploads, the saved models), and gives the fragment the answer must
hold. Most cases are refused; a few inputs are fine after all (latin-1 and UTF-16 text is decoded, an
upload name with `../` is reduced to a safe name) and `accepted` says so: their answer must show the
content instead of a cross. After each case the saved models' bytes are unchanged and nothing was
queued; the last test checks that the app and the worker still answer and that every saved model
still loads with `StaticModel.from_pretrained`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file
from helpers import recipe_form, tiny_record, tiny_static_model

from core.artifact.folder import ModelFolder

pytestmark = pytest.mark.slow  # a Gradio server with the consumer behind it

TOKEN = f"escape-{secrets.token_hex(4)}"  # the name every `../` case tries to write outside the data folder
TEXTS = ["How to install python packages with pip.", "A recipe for tomato soup with basil and garlic.",
         "The court dismissed the appeal on procedural grounds.", "My flight to Rome was delayed by three hours.",
         "Sort a list of numbers in python with sorted().", "Stock markets fell sharply today."]
GOOD, TRUNCATED, NO_TOKENIZER, WRONG_DIM, FEW_ROWS = ("bad-input-good", "bad-input-truncated",
                                                      "bad-input-no-tokenizer", "bad-input-wrong-dim",
                                                      "bad-input-few-rows")
DAMAGED = (TRUNCATED, NO_TOKENIZER, WRONG_DIM, FEW_ROWS)
NOTE = "Notes written by hand: café crème, naïve façade, déjà vu. Another line about Zürich and Málaga."


@dataclass
class Env:
    """What the cases need: the server, the folder of generated uploads and the data folder."""

    url: str
    files: Path
    data: Path

    def file(self, name: str) -> Any:
        return handle_file(str(self.files / name))

    def raw_upload(self, name: str) -> dict[str, Any]:
        """Post a file under a hostile name, as a browser or a script could; the server's FileData."""
        response = httpx.post(f"{self.url}gradio_api/upload", files=[("files", (name, (NOTE + "\n") * 5))],
                              timeout=60)
        response.raise_for_status()
        return {"path": response.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


@dataclass(frozen=True)
class Case:
    name: str
    api: str
    inputs: Callable[[Env], list[Any]]
    expect: str  # a fragment of the answer (the message shown, or the content of an accepted input)
    accepted: bool = False  # the input is fine after all: no cross, and the content is shown

    def __str__(self) -> str:
        return self.name


def submit(case: str, expect: str, **overrides: Any) -> Case:
    return Case(case, "/submit_recipe", lambda env: recipe_form(**overrides), expect)


def submit_pairs(case: str, expect: str, upload: str) -> Case:
    """Submit a corpus-method recipe with one uploaded pair file (the pair term's own upload field)."""
    return Case(case, "/submit_recipe", lambda env: recipe_form(method="corpus", corpus_size="400",
                                                                pair_files=[env.file(upload)]), expect)


def preview(name: str, expect: str, upload: str, accepted: bool = False, fields: str = "text") -> Case:
    """Preview the code domain with one generated upload (its only source): what submit accepts too."""
    return Case(name, "/preview_corpus", lambda env: [*recipe_form(**{
        "code:files": [env.file(upload)], "code:sources": [], "code:fields": fields}), "code"], expect, accepted)


def raw_preview(name: str, raw_name: str, expect: str) -> Case:
    """An upload posted by hand with a hostile file name, then previewed."""
    return Case(name, "/preview_corpus", lambda env: [*recipe_form(**{
        "code:files": [env.raw_upload(raw_name)], "code:sources": []}), "code"], expect, accepted=True)


def search(name: str, expect: str, query: str, model: str = GOOD, accepted: bool = False) -> Case:
    return Case(name, "/search", lambda env: [model, query, "", None], expect, accepted)


def evaluate(name: str, expect: str, models: list[str], tasks: str = "", limit: Any = 30,
             viable_retention: Any = 0.83, suite: str = "en") -> Case:
    return Case(name, "/evaluate", lambda env: [models, limit, viable_retention, 50, 0.89, 100, tasks, suite],
                expect)


def compare(name: str, expect: str, model: str) -> Case:
    return Case(name, "/prepare_session", lambda env: [model], expect)


CASES = [
    # Recipe values: out of range, of the wrong type, NaN and infinity, huge
    submit("corpus size 10^12", "capped at 2,000,000 texts", corpus_size="1000000000000"),
    submit("corpus size negative", "at least 1 text", corpus_size="-5"),
    submit("corpus size a word", "The corpus size must be a number, not 'lots'", corpus_size="lots"),
    submit("corpus size NaN", "The corpus size must be a finite number", corpus_size="nan"),
    submit("corpus size infinity", "The corpus size must be a finite number", corpus_size="inf"),
    submit("corpus size a fraction", "The corpus size must be a whole number", corpus_size="400.5"),
    submit("pca_dims negative", "pca_dims must be at least 2", pca_dims="-3"),
    submit("pca_dims NaN", "pca_dims must be a finite number", pca_dims="NaN"),
    submit("SIF coefficient infinity", "The SIF coefficient must be a finite number", sif_coefficient="Infinity"),
    submit("SIF coefficient above 1", "between 0 and 1", sif_coefficient="5"),
    submit("min words above max words", "is below the minimum", min_words="50", max_words="10"),
    submit("collection of 10^9 texts", "between 10 and 5,000", collection_size="1000000000"),
    submit("seed past 2^64", "The seed must be between 0 and", seed=str(2**70)),
    submit("seed negative", "The seed must be between 0 and", seed="-1"),
    submit("seed 1e400 (infinite)", "The seed must be a finite number", seed="1e400"),
    submit("min frequency a list", "The minimum frequency must be a number", min_frequency="[1, 2]"),
    submit("learning rate NaN (corpus method)", "The learning rate must be a finite number", method="corpus",
           corpus_size="400", learning_rate="nan"),
    submit("batch size 0 (corpus method)", "batch size", method="corpus", corpus_size="400", batch_size="0"),
    submit("a share left empty (null)", "Expected a `float`", **{"academic:share": None}),  # gradio's own check
    submit("a share above the slider", "greater than maximum value 100", **{"academic:share": 1e300}),
    submit("unknown pooling", "not in the list of choices", pooling="max-of-everything"),
    submit("unknown method", "not in the list of choices", method="magic"),
    submit("model name with ../", "cannot be part of a folder name", name=f"../../{TOKEN}"),
    submit("model name with NUL", "cannot be part of a folder name", name="model\x00name"),
    # Teacher ids: unknown, malformed, paths outside the allowed folders, `../`
    submit("unknown Hub teacher", "cannot be reached", teacher="no-such-org/no-such-model"),
    submit("malformed teacher id", "neither a local model folder nor a Hugging Face model id", teacher="a/b/c/d"),
    submit("teacher id of 5,000 characters", "too long", teacher="x" * 5000),
    submit("teacher id with NUL", "control character", teacher="sentence-transformers/all\x00MiniLM"),
    submit("teacher ../ relative path", "'..'", teacher="../../../../etc"),
    submit("teacher ../ inside a Hub id", "'..'", teacher="sentence-transformers/../../etc"),
    submit("teacher folder outside the allowed folders", "local teachers are read only from", teacher="/etc"),
    submit("teacher file outside the allowed folders", "local teachers are read only from", teacher="/etc/passwd"),
    submit("teacher in the home folder", "local teachers are read only from", teacher="~"),
    # Uploads
    preview("empty upload", "is empty", "empty.txt"),
    preview("binary upload", "binary file, not text", "binary.txt"),
    Case("upload of 200 MB", "/preview_corpus", lambda env: [*recipe_form(**{
        "code:files": [env.file("big.txt")], "code:sources": []}), "code"], "exceeds the maximum file size"),
    Case("upload of 200 MB posted by hand", "upload", lambda env: ["big.txt"], "maximum allowed size"),
    preview("gzip bomb", "inflates to more than 256 MB", "bomb.txt.gz"),
    preview("gzip of NUL bytes", "binary file, not text", "nul.jsonl.gz"),
    preview("gzip that is not gzip", "not a valid gzip file", "fake.txt.gz"),
    preview("latin-1 text", "café crème", "latin1.txt", accepted=True),
    preview("UTF-16 with BOM", "café crème", "utf16-bom.txt", accepted=True),
    preview("UTF-16 without BOM", "café crème", "utf16-nobom.txt", accepted=True),
    preview("UTF-16 JSONL with BOM", "café crème", "utf16-bom.jsonl", accepted=True),
    preview("JSONL with a wrong field", "has no field 'text'; its fields are: body", "wrong-field.jsonl"),
    preview("JSONL with the field missing from some rows", "café crème", "some-missing.jsonl", accepted=True),
    preview("JSONL that is not JSON", "is not valid JSON", "not-json.jsonl"),
    preview("unsupported file type", "is not a supported file type", "notes.exe"),
    submit_pairs("binary pair file", "binary file, not text", "binary-pairs.tsv"),
    submit_pairs("empty pair file", "is empty", "empty-pairs.csv"),
    submit_pairs("pair file of one column", "holds no usable pair: expected two columns", "one-column.csv"),
    submit_pairs("pair file of another type", "is not a pair file", "latin1.txt"),
    raw_preview("upload name with ../", f"../../{TOKEN}.txt", f"upload-{TOKEN}.txt"),
    raw_preview("upload name with NUL", f"{TOKEN}\x00.txt", f"upload-{TOKEN}"),
    # Corrupted model folders chosen for Compare and Evaluate
    compare("Compare: truncated safetensors", "is damaged", TRUNCATED),
    compare("Compare: missing tokenizer", "missing: tokenizer.json", NO_TOKENIZER),
    compare("Compare: wrong dimension", "16 dimensions but its record says 64", WRONG_DIM),
    compare("Compare: fewer vectors than tokens", "does not match number of vectors", FEW_ROWS),
    search("Search: truncated safetensors", "is damaged", "open a file", model=TRUNCATED),
    evaluate("Evaluate: truncated safetensors", "is damaged", [TRUNCATED]),
    evaluate("Evaluate: missing tokenizer", "missing: tokenizer.json", [NO_TOKENIZER]),
    evaluate("Evaluate: wrong dimension", "16 dimensions but its record says 64", [WRONG_DIM]),
    evaluate("Evaluate: fewer vectors than tokens", "does not match number of vectors", [FEW_ROWS]),
    Case("model info: id with ../", "/model_info", lambda env: ["../jobs"], "There is no finished model '../jobs'"),
    Case("model info: id with NUL", "/model_info", lambda env: [f"{GOOD}\x00"], "There is no finished model"),
    search("Search: model id that is a path", "There is no finished model", "python", model="/etc"),
    # Queries
    search("query of 100k characters", "only its first", "how do I open a file in python " * 3500, accepted=True),
    search("query of only emoji", "none of the query's tokens", "😀🎉🔥🚀" * 5),
    search("query of only whitespace", "Type a query first", " \t\n  \u3000 "),
    # Evaluation tasks and rows
    evaluate("task name with a path", "not a path", [GOOD], tasks="../../etc/passwd"),
    evaluate("task name with an eval folder path", "not a path", [GOOD], tasks="sts/stsbenchmark"),
    evaluate("benchmark name with a path", "not a path", [GOOD], tasks="MTEB(../x)"),
    evaluate("unknown benchmark", "mteb has no benchmark named 'MTEB(nope)'", [GOOD], tasks="MTEB(nope)"),
    evaluate("unknown evaluation suite", "not in the list of choices", [GOOD], suite="de"),
    evaluate("rows per task NaN", "Rows per task must be a finite number", [GOOD], limit="nan"),
    evaluate("retention infinity", "Viable retention must be a finite number", [GOOD], viable_retention="inf"),
    evaluate("evaluate a model id with ../", "There is no finished model", ["../models"]),
    Case("evaluation pick with a path", "/evaluation_results",
         lambda env: [[GOOD], [f"{GOOD}::../../../etc/passwd"]], "is not in the list of choices"),
    Case("evaluate from Jobs: job id with ../", "/evaluate_from_jobs", lambda env: ["../../etc"], "❌"),
    Case("resume: job id with ../", "/resume_job", lambda env: ["../../etc"], "There is no job"),
]


def _make_uploads(folder: Path) -> None:
    lines = "".join(f"{NOTE} Line {i}.\n" for i in range(20))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    with (folder / "big.txt").open("wb") as handle:  # sparse: 200 MB that cost no disk
        handle.truncate(200 * 2**20)
    chunk = gzip.compress(b"a" * (16 * 2**20), 9)  # 16 MB of one letter, no newline, in ~16 KB
    (folder / "bomb.txt.gz").write_bytes(chunk * 256)  # 256 gzip members: 4 GB inflated
    (folder / "nul.jsonl.gz").write_bytes(gzip.compress(b"\x00" * (16 * 2**20), 9))
    (folder / "fake.txt.gz").write_bytes(b"this is not gzip at all\n" * 10)
    (folder / "latin1.txt").write_bytes(lines.encode("latin-1"))
    (folder / "utf16-bom.txt").write_bytes(lines.encode("utf-16"))  # BOM, native (little-endian) order
    (folder / "utf16-nobom.txt").write_bytes(lines.encode("utf-16-le"))
    jsonl = "".join(json.dumps({"text": f"{NOTE} Row {i}."}, ensure_ascii=False) + "\n" for i in range(10))
    (folder / "utf16-bom.jsonl").write_bytes(jsonl.encode("utf-16"))
    (folder / "wrong-field.jsonl").write_text("".join(json.dumps({"body": f"row {i}"}) + "\n" for i in range(5)))
    rows = [{"text": f"{NOTE} Row {i}."} if i % 2 else {"title": f"only a title {i}"} for i in range(10)]
    (folder / "some-missing.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    (folder / "not-json.jsonl").write_text("this is { not json\nneither is this\n")
    (folder / "notes.exe").write_text(lines)
    (folder / "binary-pairs.tsv").write_bytes(b"\x89PNG\x00\x00binary\tpairs\x00" * 100)
    (folder / "empty-pairs.csv").write_bytes(b"")
    (folder / "one-column.csv").write_text("".join(f"A single column of text, line {i}.\n".replace(",", "")
                                                   for i in range(20)))


def _make_models(models: Path) -> None:
    """A good model and damaged copies of it, under the app's models folder."""
    from safetensors.numpy import load_file, save_file

    created = (datetime.now(UTC) + timedelta(days=365 * 60)).isoformat(timespec="seconds")
    good = models / GOOD
    ModelFolder.create(tiny_static_model(dim=64), tiny_record(GOOD, created=created, dim=64), TEXTS, good)
    for name in DAMAGED:
        shutil.copytree(good, models / name)
        record = json.loads((good / "distillery.json").read_text())
        record.update(id=name, name=f"damaged {name}")
        (models / name / "distillery.json").write_text(json.dumps(record))
    weights = good / "model.safetensors"
    (models / TRUNCATED / "model.safetensors").write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (models / NO_TOKENIZER / "tokenizer.json").unlink()
    tensors = load_file(str(weights))
    key = next(iter(tensors))
    save_file({key: tensors[key][:, :16].copy()}, str(models / WRONG_DIM / "model.safetensors"))
    save_file({key: tensors[key][:1000].copy()}, str(models / FEW_ROWS / "model.safetensors"))


def _digests(models: Path) -> dict[str, str]:
    return {str(p.relative_to(models)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(models.rglob("*")) if p.is_file() and p.name != "__pycache__"}


@pytest.fixture(scope="module")
def env(server, data_dir, tmp_path_factory):
    files = tmp_path_factory.mktemp("bad-uploads")
    _make_uploads(files)
    models = data_dir / "models"
    models.mkdir(exist_ok=True)
    _make_models(models)
    environment = Env(server, files, data_dir)
    yield environment
    for name in (GOOD, *DAMAGED):
        shutil.rmtree(models / name, ignore_errors=True)


@pytest.fixture(scope="module")
def client(env) -> Client:
    return Client(env.url, verbose=False)


@pytest.fixture(scope="module")
def before(env):
    """The saved models' bytes and the job folders, before any case ran."""
    (env.data / "jobs").mkdir(exist_ok=True)
    return _digests(env.data / "models"), set((env.data / "jobs").iterdir())


def _answer(client: Client, env: Env, case: Case) -> str:
    """The text a person would read: the returned Markdown, the preview's texts, or the error shown."""
    if case.api == "upload":
        try:
            response = httpx.post(f"{env.url}gradio_api/upload", timeout=120,
                                  files=[("files", ("big.txt", (env.files / "big.txt").open("rb")))])
        except httpx.HTTPError as exc:  # the server may close the connection as it refuses
            return f"connection closed: {exc}"
        return f"{response.status_code} {response.text}"
    try:
        result = client.predict(*case.inputs(env), api_name=case.api)
    except Exception as exc:  # noqa: BLE001 - gr.Error arrives as AppError, a refused value as ValueError
        return str(exc)
    if isinstance(result, dict) and "data" in result:  # a table (the preview): its cells
        return "\n".join(" | ".join(str(c) for c in row) for row in result["data"])
    if isinstance(result, (list, tuple)):
        result = result[0]
        if isinstance(result, dict) and "data" in result:
            return json.dumps(result)
    return str(result)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_explained(client: Client, env: Env, before, case: Case):
    message = _answer(client, env, case)
    print(f"\n[{case.name}] {message[:400]!r}")
    assert case.expect in message, f"{case.name}: {message[:2000]}"
    assert "Traceback" not in message and message.strip() not in ("", "Error", "None"), message[:2000]
    if case.accepted:
        assert "❌" not in message and "Error" not in message, message[:2000]
    digests, jobs = before
    assert _digests(env.data / "models") == digests  # no saved model lost or changed
    assert set((env.data / "jobs").iterdir()) == jobs  # nothing queued, no scratch folder left


def test_the_app_and_the_worker_still_answer_and_every_model_loads(client: Client, env: Env, consumer, before):
    from model2vec import StaticModel

    from jobs.status import worker_alive

    assert len(CASES) >= 40
    assert consumer.poll() is None and worker_alive()  # the worker is alive and beating
    assert client.predict(api_name="/compare_models")["value"] is not None  # the app answers
    summary, teacher, student, *_ = client.predict(GOOD, "install a python package", "", None, api_name="/search")
    assert len(student["data"]) == 5, summary
    models = env.data / "models"
    for folder in sorted(p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name in DAMAGED:
            continue
        assert StaticModel.from_pretrained(str(folder)).dim > 0, folder
    assert _digests(models) == before[0]
    # Nothing named by a `../` case was written anywhere near the data folder, the uploads or the repository.
    roots = {env.data.parent, env.data.parent.parent, env.files.parent, Path.cwd(), Path.cwd().parent}
    escaped = [p for root in roots for p in root.glob(f"*{TOKEN}*")]
    assert not escaped, escaped
