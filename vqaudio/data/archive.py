"""Safe, idempotent extraction of tar and zip archives, refusing members that would land outside the destination.

A finished extraction leaves a ``<archive name>.extracted`` marker, written last, so a rerun skips it.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from vqaudio.atomic import write_atomic
from vqaudio.data.fetch import DownloadError


def marker_path(archive: Path, dest_dir: Path) -> Path:
    """Where :func:`extract_tar` and :func:`extract_zip` mark ``archive`` as fully extracted into ``dest_dir``."""
    return dest_dir / f"{archive.name}.extracted"


def _is_within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _check_member(member: tarfile.TarInfo, dest_root: str, archive: Path) -> None:
    """Raise :class:`DownloadError` if extracting ``member`` would write or point outside ``dest_root``.

    Paths are resolved with ``realpath`` against what is already on disk, so a symlink extracted
    earlier in the same archive cannot be used as a stepping stone out of the directory.
    """
    name = member.name
    problem: str | None = None
    if name.startswith(("/", "\\")) or os.path.isabs(name):
        problem = "has an absolute path"
    elif ".." in Path(name).parts:
        problem = "contains '..'"
    elif not _is_within(os.path.realpath(os.path.join(dest_root, name)), dest_root):
        problem = "would be written outside the destination"
    elif member.issym():
        if os.path.isabs(member.linkname):
            problem = f"is a symlink to an absolute path ({member.linkname})"
        else:
            parent = os.path.dirname(os.path.join(dest_root, name))
            if not _is_within(os.path.realpath(os.path.join(parent, member.linkname)), dest_root):
                problem = f"is a symlink pointing outside the destination ({member.linkname})"
    elif member.islnk():
        # Hard link names are relative to the archive root, not to the member's directory.
        link = member.linkname
        if os.path.isabs(link) or not _is_within(os.path.realpath(os.path.join(dest_root, link)), dest_root):
            problem = f"is a hard link pointing outside the destination ({link})"
    elif member.ischr() or member.isblk() or member.isfifo():
        problem = "is a device or fifo"
    if problem is not None:
        raise DownloadError(f"{archive}: refusing unsafe member {name!r}: it {problem}")


def extract_tar(archive: str | Path, dest_dir: str | Path) -> Path:
    """Safely extract a (possibly compressed) tar archive into ``dest_dir``; idempotent.

    Every member is checked just before it is written: absolute paths, ``..`` components, links
    that resolve outside ``dest_dir``, and device files are refused with :class:`DownloadError`.
    The archive is read as a single stream, so a 30 GB ``.tar.gz`` is decompressed once. If a bad
    member appears late, the members before it stay extracted (all inside ``dest_dir``) but no
    marker is written. On success a marker ``dest_dir/<archive name>.extracted`` is written last; if
    it already exists the call returns at once.

    Returns:
        ``dest_dir``.
    """
    archive = Path(archive)
    dest = Path(dest_dir)
    marker = marker_path(archive, dest)
    if marker.exists():
        return dest
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    dest_root = os.path.realpath(dest)
    # The stdlib "data" filter (3.12, backported to 3.10.12/3.11.4) repeats our checks and also
    # strips set-uid bits and foreign owners; older interpreters rely on _check_member alone.
    use_filter = hasattr(tarfile, "data_filter")
    count = 0
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                _check_member(member, dest_root, archive)
                if use_filter:
                    tar.extract(member, dest, filter="data")
                else:
                    tar.extract(member, dest)
                count += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        # TarError includes the data filter's FilterError, whose message names the member.
        raise DownloadError(f"{archive}: cannot extract: {exc}") from exc
    _write_marker(marker, archive, count)
    return dest


def _write_marker(marker: Path, archive: Path, count: int) -> None:
    """Written last and atomically, so its presence means the whole archive is on disk."""
    write_atomic(marker, f"{archive.name}\n{count} members\n".encode())


def extract_zip(archive: str | Path, dest_dir: str | Path) -> Path:
    """Safely extract a zip archive into ``dest_dir`` (members escaping it are refused); idempotent via a marker."""
    import zipfile

    archive, dest = Path(archive), Path(dest_dir)
    marker = marker_path(archive, dest)
    if marker.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    root = os.path.realpath(dest)
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = os.path.realpath(os.path.join(root, info.filename))
                if os.path.isabs(info.filename) or os.path.commonpath([root, target]) != root:
                    raise DownloadError(f"{archive}: member {info.filename!r} would be written outside {dest}")
                zf.extract(info, dest)
            count = len(zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive}: cannot extract: {exc}") from exc
    _write_marker(marker, archive, count)
    return dest
