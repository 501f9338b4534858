"""Locks that a forked child finds released, with what they guard in one piece.

`os.fork` copies a lock in whatever state it was: when another thread of the parent held it
(compiling a kernel, running an emulated grid) at the fork, the child's copy stays held for
good, as the thread that would release it does not exist there, and the child's first compile
or call waited forever (found by an explorer). Every `ForkSafeLock` is replaced by a new,
released one in the child. One that guards state outside Python (LLVM's own locks while it
compiles, the emulation's barriers while a grid runs) is made `held_across_fork`: the fork
waits until no thread is inside it, so the child never inherits that state half updated.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import AbstractContextManager
from types import TracebackType


class ForkSafeLock:
    """A `threading.Lock` for `with` statements, new and released in a forked child.

    `held_across_fork`: a fork waits for the lock (taking it in the parent until the child
    exists), for locks guarding state that must not be copied half updated. A fork takes such
    locks in the order they were made, so one made later must not be waited for while a
    thread holds it and waits for one made earlier."""

    _every: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()

    def __init__(self, held_across_fork: bool = False) -> None:
        self._lock = threading.Lock()
        ForkSafeLock._every.add(self)
        if held_across_fork:
            _held_across_fork.append(self)

    def __enter__(self) -> ForkSafeLock:
        self._lock.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()


def hold_across_fork(lock: AbstractContextManager) -> None:
    """Make a fork wait for `lock` (another library's, entered with `with`), taken after every
    lock registered before it, and released in the parent and in the child."""
    _held_across_fork.append(lock)


# Module-level locks, in the order a fork takes them: never freed.
_held_across_fork: list[ForkSafeLock | AbstractContextManager] = []


def _before_fork() -> None:
    for lock in _held_across_fork:
        if isinstance(lock, ForkSafeLock):
            lock._lock.acquire()
        else:
            lock.__enter__()


def _after_fork_in_parent() -> None:
    for lock in reversed(_held_across_fork):
        if isinstance(lock, ForkSafeLock):
            lock._lock.release()
        else:
            lock.__exit__(None, None, None)


def _after_fork_in_child() -> None:
    for lock in reversed(_held_across_fork):  # the forking thread holds them: it goes on here
        if not isinstance(lock, ForkSafeLock):
            lock.__exit__(None, None, None)
    for lock in list(ForkSafeLock._every):
        lock._lock = threading.Lock()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
