"""Per-visitor limits (`core.limits`), visitor tokens (`core.visitors`) and model ownership
(`jobs.ownership`): no server, no worker."""

from __future__ import annotations

import shutil

import pytest

from core.errors import DistilleryError
from core.limits import (
    MB,
    LimitError,
    Limits,
    RateLimiter,
    check_active_jobs,
    check_corpus_rows,
    check_uploads,
)
from core.visitors import mint_token, visitor_id


def test_limits_have_defaults_and_read_the_environment(monkeypatch):
    for name in ("DISTILLERY_MAX_ACTIVE_JOBS", "DISTILLERY_MAX_CORPUS_ROWS", "DISTILLERY_MAX_UPLOADS",
                 "DISTILLERY_MAX_UPLOAD_MB", "DISTILLERY_RATE_EVENTS", "DISTILLERY_RATE_WINDOW_S"):
        monkeypatch.delenv(name, raising=False)
    assert Limits.from_env() == Limits(active_jobs=2, corpus_rows=100_000, uploads=5, upload_mb=200, rate_events=10,
                                       rate_window_s=600)
    monkeypatch.setenv("DISTILLERY_MAX_ACTIVE_JOBS", "3")
    monkeypatch.setenv("DISTILLERY_RATE_WINDOW_S", "90")
    limits = Limits.from_env()
    assert limits.active_jobs == 3 and limits.window() == "90 seconds"
    assert "**3** jobs queued or running" in limits.recipe_line() and "per 90 seconds" in limits.rate_line()
    assert Limits().window() == "10 minutes"


def test_each_check_refuses_past_its_limit_and_says_what_to_do():
    limits = Limits(active_jobs=2, corpus_rows=1000, uploads=2, upload_mb=1)
    check_active_jobs(1, limits)
    with pytest.raises(LimitError, match="2 jobs queued or running.*may have 2 at a time.*cancel one"):
        check_active_jobs(2, limits)
    check_corpus_rows(1000, limits)
    with pytest.raises(LimitError, match="1,001 is over .* limit of 1,000 texts"):
        check_corpus_rows(1001, limits)
    check_uploads([MB // 2, MB // 2], limits)
    with pytest.raises(LimitError, match="3 files uploaded.*at most 2 per job"):
        check_uploads([1, 1, 1], limits)
    with pytest.raises(LimitError, match="1.5 MB.*at most 1 MB per job"):
        check_uploads([MB, MB // 2], limits)
    assert issubclass(LimitError, DistilleryError)  # every tab shows it as a refusal


def test_the_rate_window_slides_and_refused_events_do_not_count():
    now = [0.0]
    rate, limits = RateLimiter(clock=lambda: now[0]), Limits(rate_events=2, rate_window_s=60)
    for _ in range(2):
        rate.check("a", "it", limits)
        rate.record("a", limits)
    with pytest.raises(LimitError, match=r"2 distillations.*per 1 minute\. Try it again in 60 seconds"):
        rate.check("a", "it", limits)
    rate.check("b", "it", limits)  # another visitor has an allowance of their own
    now[0] = 30.0
    with pytest.raises(LimitError, match="again in 30 seconds"):
        rate.check("a", "it", limits)
    now[0] = 60.0  # the first two events are a window old
    rate.check("a", "it", limits)


def test_a_visitor_token_is_accepted_only_as_the_server_signed_it(monkeypatch):
    monkeypatch.setenv("DISTILLERY_VISITOR_SECRET", "one secret")
    token = mint_token()
    visitor, signature = token.split(".")
    assert visitor_id(token) == visitor and len(visitor) == 32 and mint_token() != token
    forged = {f"{visitor}.{'0' * len(signature)}", f"{'f' * 32}.{signature}", visitor, "", None, 42, token + ".x"}
    assert all(visitor_id(t) is None for t in forged)
    monkeypatch.setenv("DISTILLERY_VISITOR_SECRET", "another secret")  # another server's tokens are refused
    assert visitor_id(token) is None


def test_the_secret_file_is_made_once_and_kept(monkeypatch, data_dir):
    from core.visitors import SECRET_FILE

    monkeypatch.delenv("DISTILLERY_VISITOR_SECRET", raising=False)
    token = mint_token()
    assert (data_dir / SECRET_FILE).stat().st_mode & 0o077 == 0 and visitor_id(token) is not None


@pytest.fixture
def owned_model(data_dir):
    """A tiny finished model whose job folder says visitor "a" made it."""
    from helpers import tiny_record, tiny_static_model

    from core.artifact.folder import ModelFolder
    from jobs.ownership import write_access

    model_id = "owned-by-a"
    path, job = data_dir / "models" / model_id, data_dir / "jobs" / model_id
    ModelFolder.create(tiny_static_model(), tiny_record(model_id), ["a text"], path)
    job.mkdir(parents=True)
    write_access(job, "a")
    yield model_id
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(job, ignore_errors=True)


def test_a_model_is_its_owners_until_shared_and_unowned_models_are_shared(owned_model):
    from jobs.ownership import open_model, set_shared, visible_models

    def ids(visitor):
        return [f.id for f in visible_models(visitor)]

    assert owned_model in ids("a") and owned_model not in ids("b") and owned_model in ids(None)  # None: private
    with pytest.raises(DistilleryError, match="private to the visitor who made it"):
        open_model(owned_model, "b")
    with pytest.raises(DistilleryError, match="Only the visitor who made"):
        set_shared(owned_model, "b", True)
    set_shared(owned_model, "a", True)
    assert owned_model in ids("b") and open_model(owned_model, "b").id == owned_model
    set_shared(owned_model, "a", False)
    assert owned_model not in ids("b")


def test_jobs_are_listed_cancelled_and_resumed_by_their_owner_only(data_dir):
    from jobs import client
    from jobs.folders import RECIPE_FILE, new_job_dir
    from jobs.status import write_status

    job_id, folder = new_job_dir("owned-job")
    (folder / RECIPE_FILE).write_text("{}")
    write_status(job_id, state="queued", task_id="none", name="owned-job", owner="a")
    try:
        assert [j["job_id"] for j in client.list_jobs(owner="a")][:1] == [job_id]
        assert job_id not in [j["job_id"] for j in client.list_jobs(owner="b")]
        assert job_id in [j["job_id"] for j in client.list_jobs()]  # a private studio lists every job
        assert [j["job_id"] for j in client.active_jobs("a")] == [job_id]
        for act in (client.cancel, client.resume):
            with pytest.raises(DistilleryError, match="not one of yours"):
                act(job_id, "b")
        assert client.cancel(job_id, "a")["state"] == "cancelled"
    finally:
        write_status(job_id, state="cancelled")
        shutil.rmtree(folder, ignore_errors=True)
