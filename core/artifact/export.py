"""Shipping a finished model out of Distillery: a zip to download, or a push to the Hugging Face Hub
(and `pull_from_hub`, the way back in for a host that serves it).

One module, because both decide which of a model folder's files leave the machine:
- `shipped_files`: every file of the folder but hidden ones (an atomic write in progress leaves a
  hidden temporary file beside the one it replaces; it is never part of the model).
- `zip_model`: the folder as `<exports>/<id>.zip`, rooted at `<id>/` so unzipping gives the model
  folder back (it loads in model2vec, sentence-transformers, `python -m serve --model` and
  `ModelFolder.at`). Written through `write_atomically`, so a half-written zip is never visible,
  and reused while no file of the folder is newer (an evaluation rewrites the card).
- `push_to_hub`: the folder to a Hub model repository, with the card's usage example pointing at
  the repo, and the record and card with local paths removed (`ModelRecord.published`). The search collection (`collection.json`, a sample of the corpus, possibly the user's
  own uploads) stays here: publishing someone's texts must not be a side effect of sharing a model.
  The token comes from the caller or `HF_TOKEN`, lives only in this call's `HfApi`, and is never
  written, logged or echoed in an error message.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import IO, Any

from core import settings
from core.artifact.card import render_card
from core.artifact.folder import CARD_FILE, COLLECTION_FILE, RECORD_FILE, ModelFolder
from core.errors import DistilleryError
from core.files import write_atomically

HUB_LEFT_OUT = (COLLECTION_FILE,)  # kept local: a sample of the corpus the model was distilled on
TOKEN_ENV = "HF_TOKEN"


def shipped_files(folder: ModelFolder) -> list[Path]:
    """Every regular file below the folder, sorted, without hidden names at any depth."""
    root = folder.path
    return sorted(path for path in root.rglob("*")
                  if path.is_file() and not path.is_symlink()
                  and not any(part.startswith(".") for part in path.relative_to(root).parts))


def zip_model(folder: ModelFolder, exports_dir: Path | None = None) -> Path:
    """`<exports>/<id>.zip` holding the model folder under `<id>/`; made again only when a file
    of the folder changed since the last one (zipping a large table takes seconds)."""
    files = shipped_files(folder)
    if not files:
        raise DistilleryError(f"The folder of '{folder.id}' is empty ({folder.path}).")
    name = folder.path.name
    target = (exports_dir or settings.exports_dir()) / f"{name}.zip"
    newest = max(path.stat().st_mtime_ns for path in files)
    if target.is_file() and target.stat().st_mtime_ns > newest and _listed(target) == _names(folder, files):
        return target

    def write(handle: IO[bytes]) -> None:
        # Level 1: float16 weights barely compress, and the time goes to the largest file.
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for path, arcname in zip(files, _names(folder, files)):
                archive.write(path, arcname)

    return write_atomically(target, write)


def _names(folder: ModelFolder, files: list[Path]) -> list[str]:
    return [f"{folder.path.name}/{path.relative_to(folder.path).as_posix()}" for path in files]


def _listed(archive: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(archive) as opened:
            return opened.namelist()
    except (OSError, zipfile.BadZipFile):
        return None


def check_repo_id(repo_id: str) -> str:
    """The repo id stripped, or a message that says what a valid one looks like."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id = (repo_id or "").strip()
    if not repo_id:
        raise DistilleryError("Name the Hub repository to push to, as 'your-name/model-name'.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise DistilleryError(f"'{repo_id}' is not a valid Hub repository id: use 'your-name/model-name' "
                              f"(letters, digits, '-', '_' and '.', at most 96 characters, no '--' or '..', "
                              f"not ending in '.git').") from None
    return repo_id


def pull_from_hub(repo_id: str, token: str | None = None) -> ModelFolder:
    """A model Distillery pushed, fetched into the Hub cache (`snapshot_download`: offline, the cached
    copy is used) and opened as a model folder, so `python -m serve --model user/model` serves it
    on a host that never ran the studio. A repo without `distillery.json` is refused by name."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    repo_id = check_repo_id(repo_id)
    try:
        path = Path(snapshot_download(repo_id, token=(token or "").strip() or None))
    except RepositoryNotFoundError:
        raise DistilleryError(f"There is no Hub model '{repo_id}' (or it is private: set HF_TOKEN).") from None
    except LocalEntryNotFoundError:
        raise DistilleryError(f"'{repo_id}' is not in the Hub cache and the Hub cannot be reached "
                              f"(HF_HUB_OFFLINE is set, or no network).") from None
    except (HfHubHTTPError, OSError) as exc:
        raise DistilleryError(f"Fetching '{repo_id}' from the Hub failed: {type(exc).__name__}.") from None
    if not (path / RECORD_FILE).is_file():
        raise DistilleryError(f"'{repo_id}' is not a model made by Distillery (it has no {RECORD_FILE}); "
                              f"serve Distillery's exports, or load it with model2vec directly.")
    return ModelFolder.at(path)


def resolve_token(token: str | None) -> str:
    """The token given, else `HF_TOKEN`; a clear refusal when neither is set."""
    token = (token or "").strip() or os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise DistilleryError("Pushing to the Hub needs a token with write access: paste one "
                              "(https://huggingface.co/settings/tokens) or set HF_TOKEN in the environment.")
    return token


def hub_operations(folder: ModelFolder, repo_id: str) -> list[Any]:
    """What a push commits: every shipped file but `HUB_LEFT_OUT`, the card rendered for the repo."""
    from huggingface_hub import CommitOperationAdd

    record = folder.record.published()  # no local paths leave the machine
    written = {CARD_FILE: render_card(record, location=repo_id).encode("utf-8"),
               RECORD_FILE: json.dumps(record.to_dict(), indent=2, ensure_ascii=False).encode("utf-8")}
    operations = []
    for path in shipped_files(folder):
        relative = path.relative_to(folder.path).as_posix()
        if relative in HUB_LEFT_OUT:
            continue
        operations.append(CommitOperationAdd(path_in_repo=relative, path_or_fileobj=written.get(relative, path)))
    return operations


def push_to_hub(folder: ModelFolder, repo_id: str, token: str | None = None, private: bool = True) -> str:
    """Create the repository if needed (`private` applies only then) and commit the model to it;
    returns the repository's URL. Every failure is a `DistilleryError` without the token in it."""
    repo_id = check_repo_id(repo_id)
    token = resolve_token(token)
    if settings.hub_offline_forced():
        raise DistilleryError("HF_HUB_OFFLINE is set, so nothing can reach the Hub: unset it to push.")
    from huggingface_hub import HfApi

    operations = hub_operations(folder, repo_id)
    api = HfApi(token=token)
    try:
        repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(repo.repo_id, operations, commit_message=f"Upload {folder.record.title} from Distillery",
                          repo_type="model")
    except Exception as exc:  # noqa: BLE001 - HTTP, auth and file errors all end the push the same way
        message = str(exc).replace(token, "<token>")
        raise DistilleryError(f"The push to '{repo_id}' failed ({type(exc).__name__}): {message}") from None
    return str(repo)
