"""Job ids and job folders (one folder per job under the data folder's `jobs/`), and their file names.

A job id is also its folder's name, so it holds only lowercase letters, digits and dashes and never
starts with a dot (hidden names are temporary files). A recipe's name is cut to a short slug; an
evaluation's id keeps the whole id of the model it evaluates (model ids are themselves job ids, or a
folder's name), so the Jobs tab and the folder say which model it was.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from core import settings
from core.files import disk_errors

RECIPE_FILE = "recipe.json"
EVALUATION_REQUEST = "evaluation-request.json"
ACCESS_FILE = "access.json"  # public mode: who submitted the job, and whether its model is shared (`jobs.ownership`)
NAME_SLUG = 40  # a recipe's name: enough to recognise it, short enough for a table column
LONGEST_SLUG = 200  # any slug: a folder name may have 255 bytes, and the date and suffix take 21


def slug(name: str, limit: int = NAME_SLUG) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:min(limit, LONGEST_SLUG)].strip("-")


def new_job_id(name: str, limit: int = NAME_SLUG) -> str:
    """`<slug of name>-<date>-<time>-<4 hex>`: unique, sortable by submission within a name."""
    return f"{slug(name, limit) or 'model'}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def evaluation_job_id(model_id: str) -> str:
    """`evaluate-<the whole model id>-<date>-<time>-<4 hex>` (a Distillery model id is already a slug)."""
    return new_job_id(f"evaluate-{model_id}", limit=LONGEST_SLUG)


def new_job_dir(name: str, job_id: str | None = None) -> tuple[str, Path]:
    """A fresh job folder (named `job_id`, or an id made from `name`); uploads are copied here before the
    recipe is submitted."""
    job_id = job_id or new_job_id(name)
    folder = settings.jobs_dir() / job_id
    with disk_errors(folder.parent):
        folder.mkdir(parents=True)
    return job_id, folder
