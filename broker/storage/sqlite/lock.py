"""One broker per SQLite file: an exclusive ``flock`` on ``<file>.lock``, held while the storage
is open.

Two brokers on one file would each deliver only what they themselves commit (wake-ups are in
memory), so the second refuses to start until a backend for several processes (PostgreSQL)
exists. The lock is the kernel's: it is released when the storage closes, and when the process
dies, however it dies; the lock file itself stays (removing it would race with a starting
broker).
"""

from __future__ import annotations

import fcntl
import os

from ...errors import StorageLocked


def lock_path(path: str) -> str:
    return f"{path}.lock"


def acquire(path: str) -> int:
    """Lock the database file ``path`` for this process; return the lock's file descriptor."""
    lock = lock_path(path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StorageLocked(
            f"the database {path} is in use by another broker (it holds {lock}):"
            " stop that broker, or give this one another --db"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def create_private(path: str) -> None:
    """Create the database file owner-only (0600) if it does not exist yet; SQLite gives its
    -wal and -shm files the same permissions."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
