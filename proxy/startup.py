"""Start-up failures: one line that names what failed and what to do, never a traceback.

The serving commands start things in order (data dir, embedded Redis, proxy
listener, collectors, admin listener) and give each one's cleanup to an
``AsyncExitStack``; when a later step fails, everything already started is
released in reverse order and the failure is raised as :class:`StartupError`.
:mod:`proxy.cli` prints ``footfall: <message>`` and exits with
:data:`EXIT_STARTUP`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

EXIT_STARTUP = 1


class StartupError(Exception):
    """Footfall could not start; ``str(exc)`` is the one line to show the user."""


def _reason(exc: OSError) -> str:
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def cannot_listen(exc: OSError, host: str, port: int, what: str) -> StartupError:
    """``cannot listen on 127.0.0.1:9108 (admin): address already in use``, plus a hint."""
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        flag = "--admin-listen" if what == "admin" else "--listen"
        hint = f"; stop the other process or choose another port with {flag}"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = "; ports below 1024 need privileges: choose a port above 1024"
    return StartupError(f"cannot listen on {host}:{port} ({what}): {_reason(exc)}{hint}")


def cannot_use_data_dir(exc: OSError, data_dir: Path) -> StartupError:
    """A data-directory failure (not a directory, permission, disk full), naming the path."""
    where = exc.filename if exc.filename else data_dir
    return StartupError(
        f"cannot use data directory {data_dir}: {_reason(exc)} ({where}); "
        "choose a writable directory with --data-dir or FOOTFALL_DATA_DIR"
    )
