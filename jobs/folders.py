"""Job ids and job folders (one folder per job under the data folder's `jobs/`), and their file names."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

from core import settings

RECIPE_FILE = "recipe.json"
EVALUATION_REQUEST = "evaluation-request.json"


def new_job_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "model"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def new_job_dir(name: str) -> tuple[str, Path]:
    """A fresh job folder; uploads are copied here before the recipe is submitted."""
    job_id = new_job_id(name)
    folder = settings.jobs_dir() / job_id
    folder.mkdir(parents=True)
    return job_id, folder
