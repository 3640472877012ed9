"""Is the Hugging Face Hub reachable? Decides between Hub sources and the local corpus folder."""

from __future__ import annotations

import os
import time
import urllib.request

_TRUTHY = {"1", "true", "yes", "on"}
_cache: tuple[float, bool] | None = None


def hub_offline_forced() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY


def hub_reachable(timeout: float = 3.0, max_age: float = 300.0) -> bool:
    """True when the Hub answers within `timeout` seconds; cached for `max_age` seconds."""
    global _cache
    if hub_offline_forced():
        return False
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < max_age:
        return _cache[1]
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        with urllib.request.urlopen(f"{endpoint}/api/whoami-v2", timeout=timeout):
            ok = True
    except urllib.error.HTTPError:  # 401 without a token still means the Hub answered
        ok = True
    except OSError:
        ok = False
    _cache = (now, ok)
    return ok
