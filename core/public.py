"""What a public studio lets a stranger name: teachers from an allow-list only, code trusted by the
deployment only, and endpoints only where the deployment points.

In public mode (`core.settings.public_mode`) a recipe from the browser may name:
- a teacher only from `DISTILLERY_ALLOWED_TEACHERS` (comma-separated Hub ids or local folders the
  deployment chose; default: the bundled teacher). A local path typed by a visitor is never read,
  and a student tokenizer comes from the same list.
- no `trust_remote_code`: it becomes a deployment setting, `DISTILLERY_REMOTE_CODE_TEACHERS` (ids of
  allow-listed teachers whose own code the deployment trusts), applied by `apply_public_policy`.
- an endpoint teacher only under a URL prefix of `DISTILLERY_ALLOWED_ENDPOINTS` (comma-separated,
  default none): otherwise the worker would send requests wherever a stranger asks, inside the
  Space's network included.

Private mode allows everything the recipe checks allow (`core.recipe.validate_recipe`).
"""

from __future__ import annotations

import os

from core.encoders.endpoint import EndpointSpec
from core.encoders.teacher import DEFAULT_TEACHER
from core.errors import DistilleryError
from core.recipe import Recipe
from core.settings import public_mode


def _listed(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def allowed_teachers() -> list[str]:
    """The teachers a public studio offers (`DISTILLERY_ALLOWED_TEACHERS`, default the bundled one)."""
    return _listed("DISTILLERY_ALLOWED_TEACHERS", DEFAULT_TEACHER)


def remote_code_teachers() -> list[str]:
    """Allow-listed teachers whose own code the deployment trusts (`DISTILLERY_REMOTE_CODE_TEACHERS`)."""
    return [name for name in _listed("DISTILLERY_REMOTE_CODE_TEACHERS") if name in allowed_teachers()]


def allowed_endpoints() -> list[str]:
    """URL prefixes an endpoint teacher may have in a public studio (`DISTILLERY_ALLOWED_ENDPOINTS`)."""
    return _listed("DISTILLERY_ALLOWED_ENDPOINTS")


def apply_public_policy(recipe: Recipe) -> None:
    """Refuse, with the reason, what a public studio does not allow (nothing in private mode); set
    `trust_remote_code` from the deployment's list. Called before the recipe is checked and queued."""
    if not public_mode():
        return
    if recipe.trust_remote_code:
        raise DistilleryError("This studio is public: it does not run a teacher's own code on a visitor's "
                              "request. Untick 'Trust remote code' (the deployment decides which teachers may "
                              "run theirs).")
    teachers = allowed_teachers()
    if isinstance(recipe.teacher, EndpointSpec):
        prefixes = allowed_endpoints()
        if not any(recipe.teacher.url.rstrip("/").startswith(p.rstrip("/")) for p in prefixes):
            raise DistilleryError("This studio is public: it reaches only the endpoints its deployment allows "
                                  + (f"({', '.join(prefixes)})." if prefixes else "(none here).")
                                  + " Run Distillery on your own machine to distil another API.")
    elif recipe.teacher not in teachers:
        raise DistilleryError(f"This studio is public: its teachers are {', '.join(teachers)}. Run Distillery on "
                              f"your own machine to distil '{recipe.teacher}'.")
    else:
        recipe.trust_remote_code = recipe.teacher in remote_code_teachers()
    tokenizer = getattr(recipe.params, "student_tokenizer", None)
    if tokenizer and tokenizer not in teachers:
        raise DistilleryError(f"This studio is public: a student tokenizer comes from its teachers "
                              f"({', '.join(teachers)}), or leave the field empty.")
