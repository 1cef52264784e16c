"""Write a file so that readers see the old file or the complete new one, never a part, even after a crash.

The bytes go to a fresh temp file in the target's folder (so the final step is a rename on one file
system), are flushed and fsync'd, and then take the target's name: ``os.replace`` when overwriting, and a
hard link when not, which fails instead of replacing a file that appeared in the meantime. The temp file is
removed on every failure. Permissions follow the umask, like any file the user makes.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: the folder is missing or not writable, or the disk is full.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists")
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if path appeared since the check above
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
