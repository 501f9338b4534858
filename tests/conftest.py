"""Settings for the whole test session.

Compiled code goes to a cache folder made for this session (`LPIR_CACHE_DIR`, inherited by the
processes tests start) and removed after it: an entry left in `~/.cache/lpir` by an earlier
version of lpir can never stand in for the code this version makes, and a test run leaves no
entries behind for the user's own compiles. Tests that need a cache of their own still set
`LPIR_CACHE_DIR` themselves.

The pass pipeline's output is not taken from the cache (`LPIR_PIPELINE_CACHE=0`): tests patch
passes and spy on them, which its key cannot see; tests/test_pipeline_cache.py turns it on.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_PREVIOUS = pytest.StashKey[str | None]()
_SESSION_CACHE = pytest.StashKey[str]()
_PREVIOUS_PIPELINE = pytest.StashKey[str | None]()


def pytest_configure(config: pytest.Config) -> None:
    directory = tempfile.mkdtemp(prefix="lpir-test-cache-")
    config.stash[_PREVIOUS] = os.environ.get("LPIR_CACHE_DIR")
    config.stash[_SESSION_CACHE] = directory
    os.environ["LPIR_CACHE_DIR"] = directory
    config.stash[_PREVIOUS_PIPELINE] = os.environ.get("LPIR_PIPELINE_CACHE")
    os.environ["LPIR_PIPELINE_CACHE"] = "0"


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_SESSION_CACHE, None)
    if directory is None:
        return
    for name, key in (("LPIR_CACHE_DIR", _PREVIOUS), ("LPIR_PIPELINE_CACHE", _PREVIOUS_PIPELINE)):
        previous = config.stash[key]
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
    shutil.rmtree(directory, ignore_errors=True)
