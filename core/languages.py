"""The languages Distillery works in, by code: one owner for their names and for what "both" means.

A corpus plan draws from a language's sources, and an evaluation suite scores a student on that
language's sets; both name them with these codes ("en", "fr", and "both": English and French
together, a cross-lingual student), so a recipe's language is also the suite its student is judged on.
"""

from __future__ import annotations

from core.errors import DistilleryError

LANGUAGES: dict[str, str] = {"en": "English", "fr": "French", "both": "English and French"}


def check_language(language: object) -> str:
    """The language of a plan or recipe, or a `DistilleryError` that lists the known ones."""
    if not isinstance(language, str) or language not in LANGUAGES:
        known = ", ".join(f"'{k}' ({v})" for k, v in LANGUAGES.items())
        raise DistilleryError(f"Unknown corpus language {language!r}: use one of {known}.")
    return language


def plan_languages(language: str) -> tuple[str, ...]:
    """The single languages `language` stands for: ("en",), ("fr",) or ("en", "fr")."""
    return ("en", "fr") if check_language(language) == "both" else (language,)
