"""Settings for the whole test session.

Compiled code goes to a cache folder made for this session (`LPIR_CACHE_DIR`, inherited by the
processes tests start) and removed after it: an entry left in `~/.cache/lpir` by an earlier
version of lpir can never stand in for the code this version makes, and a test run leaves no
entries behind for the user's own compiles. pytest-xdist's workers share the folder (the disk
cache's entries are written atomically). Tests that need a cache of their own still set
`LPIR_CACHE_DIR` themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from lpir.runtime.stages import VERIFY_EACH_VARIABLE

_PREVIOUS = pytest.StashKey[str | None]()
_SESSION_CACHE = pytest.StashKey[str]()


#: the session's cache folder, for pytest-xdist's workers (started after `pytest_configure`
#: with its environment): they share it, so a kernel one compiled the other finds on disk
_SHARED = "LPIR_TEST_SESSION_CACHE"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_PREVIOUS] = os.environ.get("LPIR_CACHE_DIR")
    shared = os.environ.get(_SHARED)
    if shared and os.environ.get("PYTEST_XDIST_WORKER") and os.path.isdir(shared):
        os.environ["LPIR_CACHE_DIR"] = shared  # the controller made it and removes it
        return
    directory = tempfile.mkdtemp(prefix="lpir-test-cache-")
    config.stash[_SESSION_CACHE] = directory
    os.environ["LPIR_CACHE_DIR"] = directory
    os.environ[_SHARED] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_SESSION_CACHE, None)
    if directory is None:
        return
    os.environ.pop(_SHARED, None)
    previous = config.stash[_PREVIOUS]
    if previous is None:
        os.environ.pop("LPIR_CACHE_DIR", None)
    else:
        os.environ["LPIR_CACHE_DIR"] = previous
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def verify_every_pass():
    """`LPIR_VERIFY_EACH=1` for a module's tests: `lpir.compile` verifies the IR after every
    pass, not only its input and output (`pytestmark = pytest.mark.usefixtures(...)`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(VERIFY_EACH_VARIABLE, "1")
        yield
