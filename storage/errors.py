"""Errors a user can act on: a full disk anywhere (checkpoint, model folder, database), a busy or broken database.

The UI shows `readable_db_error(err)` instead of a driver's text ("(sqlite3.OperationalError) database or disk
is full [SQL: INSERT INTO ...]"); the worker records `disk_full_reason(err)` as a failed job's error.
"""

from __future__ import annotations

import errno

# how each layer words "no space left": the OS (errno 28), SQLite, safetensors (Rust io::Error), torch.save
DISK_FULL_TEXTS = ("no space left on device", "database or disk is full", "storagefull", "os error 28")


def _chain(err: BaseException):
    """The error, then its causes and contexts (SQLAlchemy wraps the driver's error; torch wraps the OS's)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__ or getattr(err, "orig", None)


def is_disk_full(err: BaseException) -> bool:
    """Whether the error, or one it wraps, says the disk is full.

    >>> is_disk_full(OSError(errno.ENOSPC, "No space left on device", "/data/x"))
    True
    """
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if any(text in str(e).lower() for text in DISK_FULL_TEXTS):
            return True
    return False


def disk_full_reason(err: BaseException, where: str | None = None) -> str | None:
    """``disk full at <path>: ...`` for a full-disk error (the path from the OS error, else `where`), else None.

    >>> disk_full_reason(OSError(errno.ENOSPC, "No space left on device", "/data/models/3"))
    'disk full at /data/models/3: free some space, then train again'
    """
    if not is_disk_full(err):
        return None
    path = next((e.filename for e in _chain(err) if isinstance(e, OSError) and e.filename), None)
    return f"disk full at {path or where or 'an unknown path'}: free some space, then train again"


def readable_db_error(err: BaseException, where: str | None = None) -> str:
    """One line for a database error, never the driver's SQL dump.

    Args:
        err: any exception, typically a `sqlalchemy.exc.SQLAlchemyError`.
        where: the database (path or URL) for the disk-full message.

    Returns:
        A sentence saying what happened and what to do.

    >>> from sqlalchemy.exc import OperationalError
    >>> readable_db_error(OperationalError("INSERT ...", {}, Exception("database is locked")))
    'the database is busy (another process is writing): try again in a moment'
    """
    full = disk_full_reason(err, where)
    if full:
        return full.replace("train again", "try again")
    text = " ".join(str(e) for e in _chain(err)).lower()
    if "database is locked" in text or "could not obtain lock" in text:
        return "the database is busy (another process is writing): try again in a moment"
    if "readonly database" in text or "read-only" in text:
        return "the database is read-only here: check the data folder's permissions"
    if "unique constraint" in text or "duplicate key" in text:
        return "that name or row already exists"
    if "foreign key" in text:
        return "a row it refers to was deleted meanwhile: reload the page"
    orig = getattr(err, "orig", None) or err
    return f"database error ({type(orig).__name__}): {str(orig).splitlines()[0][:200] if str(orig) else ''}"
