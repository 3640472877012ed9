"""The huey instance: SQLite in the data folder by default, Redis for consumers on several machines.

Set `DISTILLERY_REDIS_URL` (e.g. redis://host:6379/0) to share one queue between machines; the
data folder must then be shared too (models are written there), and a corpus-method job's teacher
pass is shared out in shards that any consumer takes (`jobs.shards`; the README's "Scaling out").
"""

from __future__ import annotations

import os

from huey import RedisHuey, SqliteHuey

from core import settings


def make_huey():
    redis_url = os.environ.get("DISTILLERY_REDIS_URL")
    if redis_url:
        return RedisHuey("distillery", url=redis_url, results=True)
    return SqliteHuey("distillery", filename=str(settings.data_dir() / "queue.db"), results=True)


huey = make_huey()
