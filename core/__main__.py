"""Run a recipe from the command line, with tqdm progress bars: `python -m core recipe.json`.

Without a file, the default recipe runs. Prints the model folder and the time per stage. A recipe
whose estimated peak memory exceeds what the machine has free is refused first (`core.memory`;
DISTILLERY_MEMORY_LIMIT_MB overrides the figure).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from core import settings
from core.corpus.sources import load_catalogue
from core.errors import DistilleryError
from core.memory import check_memory
from core.methods.registry import METHODS
from core.pipeline import run_recipe, stage_plan
from core.progress import TqdmProgress
from core.recipe import Recipe, validate_recipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__)
    parser.add_argument("recipe", nargs="?", help="recipe JSON file (default: the default recipe)")
    parser.add_argument("--method", choices=list(METHODS), help="override the recipe's method (its defaults follow)")
    parser.add_argument("--corpus-size", type=int, help="override the recipe's corpus size")
    parser.add_argument("--name", default="", help="model name")
    args = parser.parse_args(argv)
    data = json.loads(Path(args.recipe).read_text()) if args.recipe else {}
    if args.method:
        data["method"] = args.method
    recipe = Recipe.from_dict(data)
    if args.corpus_size:
        recipe.corpus_size = args.corpus_size
    recipe.name = args.name or recipe.name
    run_id = f"cli-{uuid.uuid4().hex[:8]}"
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


if __name__ == "__main__":
    raise SystemExit(main())
