"""core.public: in public mode a visitor names allow-listed teachers and endpoints only, and never
turns on a teacher's own code; in private mode nothing changes. Through `jobs.client.submit`, a
refusal queues nothing and leaves no job folder."""

from __future__ import annotations

import helpers
import pytest

from core import settings
from core.corpus.sources import load_catalogue
from core.encoders.endpoint import EndpointSpec
from core.encoders.teacher import DEFAULT_TEACHER
from core.errors import DistilleryError
from core.methods.corpus import CorpusParams
from core.public import apply_public_policy
from core.recipe import Recipe


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setenv("DISTILLERY_PUBLIC", "1")
    for name in ("DISTILLERY_ALLOWED_TEACHERS", "DISTILLERY_REMOTE_CODE_TEACHERS", "DISTILLERY_ALLOWED_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_public_mode_is_on_for_a_space_and_switchable(monkeypatch) -> None:
    monkeypatch.delenv("DISTILLERY_PUBLIC", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not settings.public_mode()
    monkeypatch.setenv("SPACE_ID", "someone/distillery")
    assert settings.public_mode()
    monkeypatch.setenv("DISTILLERY_PUBLIC", "0")  # a private Space
    assert not settings.public_mode()
    monkeypatch.delenv("SPACE_ID")
    monkeypatch.setenv("DISTILLERY_PUBLIC", "true")
    assert settings.public_mode()


def test_only_allow_listed_teachers_and_never_a_visitors_remote_code(public, tmp_path) -> None:
    apply_public_policy(Recipe())  # the bundled teacher is allowed by default
    for teacher in ("BAAI/bge-small-en-v1.5", str(tmp_path), "../teachers/x", "/etc"):
        with pytest.raises(DistilleryError, match=f"its teachers are {DEFAULT_TEACHER}"):
            apply_public_policy(Recipe(teacher=teacher))
    with pytest.raises(DistilleryError, match="does not run a teacher's own code"):
        apply_public_policy(Recipe(trust_remote_code=True))

    public.setenv("DISTILLERY_ALLOWED_TEACHERS", f"{DEFAULT_TEACHER}, Alibaba-NLP/gte-base-en-v1.5")
    public.setenv("DISTILLERY_REMOTE_CODE_TEACHERS", "Alibaba-NLP/gte-base-en-v1.5,not/listed")
    trusted = Recipe(teacher="Alibaba-NLP/gte-base-en-v1.5")
    apply_public_policy(trusted)
    assert trusted.trust_remote_code  # the deployment's setting, not the visitor's
    plain = Recipe()
    apply_public_policy(plain)
    assert not plain.trust_remote_code

    tokenizer = Recipe(method="corpus", distill=CorpusParams(student_tokenizer="/home/someone/tokenizer"))
    with pytest.raises(DistilleryError, match="student tokenizer comes from its teachers"):
        apply_public_policy(tokenizer)


def test_endpoints_only_under_the_deployments_prefixes(public) -> None:
    spec = EndpointSpec(kind="openai", url="http://10.0.0.5:8080/v1", model="m")
    with pytest.raises(DistilleryError, match=r"only the endpoints its deployment allows \(none here\)"):
        apply_public_policy(Recipe(teacher=spec, method="corpus"))
    public.setenv("DISTILLERY_ALLOWED_ENDPOINTS", "https://api.example.com/v1")
    with pytest.raises(DistilleryError, match=r"allows \(https://api.example.com/v1\)"):
        apply_public_policy(Recipe(teacher=spec, method="corpus"))
    apply_public_policy(Recipe(teacher=EndpointSpec(kind="openai", url="https://api.example.com/v1/", model="m"),
                               method="corpus"))


def test_private_mode_allows_what_the_recipe_checks_allow(monkeypatch) -> None:
    monkeypatch.setenv("DISTILLERY_PUBLIC", "0")
    recipe = Recipe(teacher="BAAI/bge-small-en-v1.5", trust_remote_code=True)
    apply_public_policy(recipe)
    assert recipe.trust_remote_code


def test_a_refused_submission_queues_nothing_and_leaves_no_folder(public) -> None:
    from jobs import client

    before = sorted(p.name for p in settings.jobs_dir().iterdir())
    with pytest.raises(DistilleryError, match="its teachers are"):
        client.submit(helpers.small_recipe("public-refused", teacher="BAAI/bge-small-en-v1.5"),
                      load_catalogue())
    assert sorted(p.name for p in settings.jobs_dir().iterdir()) == before
