"""Who owns a job and the model it made in a public studio, and who else may see them. No Gradio here.

An owner is a visitor key that the app derives from the request (`ui.visitors`), never a value a
form sends. A visitor of `None` means a private studio: one person, who sees and acts on
everything, exactly as before public mode existed.

- A job's owner is in its status (`owner`, written once by `jobs.client.enqueue` and kept by every
  later write): only its owner lists, cancels or resumes it.
- A model's owner is the owner of the job that made it (a distillation's model id is its job id). It
  is kept in the job folder's `access.json`, written at submission, so a model is never visible to
  others, not even for an instant, before its owner is known; the file also says whether the owner
  shares the model. A shared model is read-only to the others: they may compare, evaluate and
  download it, never change who sees it. A model without the file (shipped with the deployment,
  or made in private mode) has no owner and is shared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import settings
from core.artifact.folder import ModelFolder
from core.errors import DistilleryError
from core.files import write_json
from jobs.folders import ACCESS_FILE


@dataclass(frozen=True)
class ModelAccess:
    owner: str | None
    shared: bool


def owns_job(status: dict[str, Any], visitor: str | None) -> bool:
    """May `visitor` see and act on the job whose status this is? (A private studio: always.)"""
    return visitor is None or status.get("owner") == visitor


def not_yours(job_id: str) -> DistilleryError:
    return DistilleryError(f"Job '{job_id}' is not one of yours: on this shared studio each visitor sees, cancels "
                           f"and resumes only the jobs they submitted.")


def write_access(job_folder: Path, owner: str, shared: bool = False) -> None:
    """Record the owner of the job in `job_folder` (and so of the model it will make)."""
    write_json(job_folder / ACCESS_FILE, {"owner": owner, "shared": shared})


def model_access(folder: ModelFolder) -> ModelAccess:
    path = settings.jobs_dir() / folder.id / ACCESS_FILE
    if not path.is_file():
        return ModelAccess(owner=None, shared=True)
    data = json.loads(path.read_text())
    return ModelAccess(owner=data.get("owner"), shared=bool(data.get("shared")))


def may_see(folder: ModelFolder, visitor: str | None) -> bool:
    return visitor is None or shared_with_all(folder) or model_access(folder).owner == visitor


def shared_with_all(folder: ModelFolder) -> bool:
    """May every visitor use the model (its owner shared it, or it has none)? What a public studio's
    embeddings routes serve, since their callers are not visitors of the page."""
    access = model_access(folder)
    return access.owner is None or access.shared


def visible_models(visitor: str | None) -> list[ModelFolder]:
    """The finished models `visitor` may use, newest first (`ModelFolder.finished`)."""
    return [folder for folder in ModelFolder.finished() if may_see(folder, visitor)]


def open_model(model_id: str, visitor: str | None) -> ModelFolder:
    """`ModelFolder.open`, refused when the model is another visitor's and not shared."""
    folder = ModelFolder.open(model_id)
    if not may_see(folder, visitor):
        raise DistilleryError(f"The model '{folder.id}' is private to the visitor who made it: they can share it "
                              f"in the Ship tab.")
    return folder


def set_shared(model_id: str, visitor: str | None, shared: bool) -> ModelAccess:
    """Share the model with every visitor, or make it private again; only its owner may."""
    folder = ModelFolder.open(model_id)
    access = model_access(folder)
    if access.owner is None:
        raise DistilleryError(f"The model '{folder.id}' belongs to no visitor (it came with this studio): every "
                              f"visitor sees it already.")
    if visitor is not None and access.owner != visitor:
        raise DistilleryError(f"Only the visitor who made '{folder.id}' can change who sees it.")
    write_access(settings.jobs_dir() / folder.id, access.owner, shared)
    return ModelAccess(access.owner, shared)
