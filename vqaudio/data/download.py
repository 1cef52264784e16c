"""Resumable, checksum-verified downloads and safe tar extraction, for the LibriSpeech recipe.

Stage 1 of the LibriSpeech recipe calls :func:`download_librispeech`, which fetches the official
archives from openslr (resource 12) with :func:`download_file` and unpacks them with
:func:`extract_tar`. Both steps are idempotent so the stage can be re-run after any interruption:

- a download writes to ``<dest>.part`` and only renames it to ``<dest>`` once the md5 matches, so a
  file at ``<dest>`` is always complete; an interrupted ``.part`` is resumed with an HTTP ``Range``
  request instead of starting over (the train-other-500 archive is 30 GB);
- an extraction writes a ``<archive name>.extracted`` marker beside the extracted tree as its last
  step, so a marker means "fully extracted" and a missing one means "extract again".

Only the standard library (``urllib.request``) and tqdm are used, so the downloader works wherever
vqaudio installs. No network is touched at import.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vqaudio.atomic import write_atomic
from vqaudio.errors import ConfigError, VQAudioError

__all__ = [
    "LIBRISPEECH_MD5",
    "LIBRISPEECH_SUBSETS",
    "LIBRISPEECH_URL",
    "DownloadError",
    "DownloadResult",
    "download_file",
    "download_librispeech",
    "extract_tar",
]

logger = logging.getLogger(__name__)

LIBRISPEECH_URL: str = "https://www.openslr.org/resources/12"

# The subsets openslr publishes as resource 12, in its own order.
LIBRISPEECH_SUBSETS: tuple[str, ...] = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
)

# md5 sums of "<subset>.tar.gz" as listed in https://www.openslr.org/resources/12/md5sum.txt.
# A subset missing here would be downloaded unchecked (with a warning), never refused.
LIBRISPEECH_MD5: dict[str, str] = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}

# First pause between attempts; it doubles each retry up to _BACKOFF_MAX_SECONDS. Short, because a
# dropped connection to a healthy mirror usually succeeds at once, and resuming loses nothing.
_BACKOFF_SECONDS = 0.5
_BACKOFF_MAX_SECONDS = 8.0
# Server answers worth retrying; any other HTTP error (404, 403, ...) will not change on a retry.
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_HASH_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


class DownloadError(VQAudioError):
    """A download failed (unreachable URL, HTTP error, checksum mismatch) or an archive is unsafe."""


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download_file` did.

    Attributes:
        path: the complete, renamed file.
        bytes_downloaded: bytes received over the network by this call; bytes already in a ``.part``
            file from an earlier call are not counted (0 when ``path`` already existed).
        resumed: True when this call continued a partial ``.part`` file with a ``Range`` request
            rather than starting from byte 0.
        verified: True when an md5 was given, checked, and matched.
    """

    path: Path
    bytes_downloaded: int
    resumed: bool
    verified: bool


class _RetryableError(Exception):
    """Internal: this attempt failed in a way a later attempt (resuming the .part) may fix."""


@dataclass
class _Tally:
    """Internal running totals of one :func:`download_file` call, kept across its attempts."""

    received: int = 0
    resumed: bool = False


def _digest_of(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in chunks so a 30 GB archive needs no more than 1 MiB of memory."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _build_opener() -> urllib.request.OpenerDirector:
    # A fresh opener per call reads the proxy environment (http_proxy, no_proxy) at call time rather
    # than at the first urlopen of the process, which urllib's global opener would freeze.
    return urllib.request.build_opener()


def _fetch_once(
    opener: urllib.request.OpenerDirector,
    url: str,
    part: Path,
    *,
    chunk_size: int,
    timeout: float,
    progress: bool,
    desc: str,
    tally: _Tally,
) -> None:
    """One HTTP attempt that brings ``part`` towards the full file, adding what it did to ``tally``.

    Raises :class:`_RetryableError` if the connection failed or ended early (``part`` keeps what
    arrived, ``tally`` counts it), :class:`DownloadError` if retrying is pointless.
    """
    offset = part.stat().st_size if part.exists() else 0
    # Name the client instead of the generic "Python-urllib", so mirror operators can tell who we are.
    headers = {"User-Agent": "vqaudio-downloader"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset > 0:
            # The .part already holds every byte, unless the server says the file has another size
            # (a stale .part from a different file): then start over.
            match = _UNSATISFIED_RANGE.search(exc.headers.get("Content-Range", "") if exc.headers else "")
            if match is None or int(match.group(1)) == offset:
                tally.resumed = True
                return
            part.unlink()
            raise _RetryableError(f"partial file is larger than the remote file ({offset} bytes)") from exc
        if exc.code in _RETRYABLE_STATUS:
            raise _RetryableError(f"HTTP {exc.code} {exc.reason}") from exc
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        # URLError (refused, DNS), TimeoutError and resets are all OSError subclasses.
        raise _RetryableError(str(exc) or type(exc).__name__) from exc

    with response:
        status = response.status
        total: int | None = None
        if status == 206:
            match = _CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                # A range we did not ask for cannot be appended; drop the .part and retry from zero.
                part.unlink(missing_ok=True)
                raise _RetryableError("server answered with an unexpected byte range")
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode, start = "ab", offset
            tally.resumed = True
        else:
            # 200: the server ignored Range (or none was sent), so the body is the whole file.
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
            mode, start = "wb", 0

        received = 0  # this attempt only; the total-size check below needs it
        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            # None lets tqdm switch itself off when stderr is not a terminal (logs, CI).
            disable=None if progress else True,
            leave=False,
        )
        try:
            with open(part, mode) as out:
                while True:
                    try:
                        chunk = response.read(chunk_size)
                    except (OSError, http.client.HTTPException) as exc:
                        # IncompleteRead (peer closed before Content-Length) or a read timeout.
                        raise _RetryableError(str(exc) or type(exc).__name__) from exc
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    tally.received += len(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()

    if total is not None and start + received != total:
        raise _RetryableError(f"connection ended after {start + received} of {total} bytes")


def download_file(
    url: str,
    dest: str | Path,
    *,
    md5: str | None = None,
    sha1: str | None = None,
    chunk_size: int = 1 << 20,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> DownloadResult:
    """Download ``url`` to ``dest``, resuming a partial download and verifying its md5.

    Bytes go to ``<dest>.part``; an interrupted call leaves it there and the next call asks the
    server for the rest (``Range: bytes=N-``). A 206 answer is appended, a 200 answer (no range
    support) restarts from zero, a 416 answer means the ``.part`` is already complete. Only after
    the md5 matches is the ``.part`` renamed to ``dest`` (atomically), so ``dest`` is never partial.

    Args:
        url: http(s) URL of the file.
        dest: final path; its parent directory is created.
        md5: expected hex md5; None skips verification.
        sha1: expected hex sha1, for archives published with sha1 sums (used instead of ``md5``).
        chunk_size: bytes read per network call.
        retries: extra attempts after a connection error, timeout or 5xx answer; each resumes.
        timeout: seconds a connect or a single read may block.
        progress: show a tqdm bar (it also hides itself when stderr is not a terminal).

    Returns:
        A :class:`DownloadResult`. If ``dest`` already exists and matches ``md5`` (or ``md5`` is
        None) nothing is fetched and ``bytes_downloaded`` is 0.

    Raises:
        DownloadError: the URL failed after all retries, answered with an HTTP error such as 404,
            or the downloaded bytes do not match ``md5`` (the bad file is then deleted).
    """
    if retries < 0 or chunk_size <= 0 or timeout <= 0:
        raise ValueError(f"need retries >= 0, chunk_size > 0, timeout > 0; got {retries}, {chunk_size}, {timeout}")
    dest = Path(dest)
    part = _part_path(dest)
    algorithm = "sha1" if sha1 is not None else "md5"
    expected = (sha1 or md5 or "").lower() or None

    if dest.exists():
        if expected is None:
            return DownloadResult(dest, 0, False, False)
        if _digest_of(dest, algorithm) == expected:
            return DownloadResult(dest, 0, False, True)
        logger.warning("%s does not match its %s; downloading it again", dest, algorithm)

    dest.parent.mkdir(parents=True, exist_ok=True)
    opener = _build_opener()
    tally = _Tally()
    for attempt in range(retries + 1):
        try:
            _fetch_once(
                opener,
                url,
                part,
                chunk_size=chunk_size,
                timeout=timeout,
                progress=progress,
                desc=dest.name,
                tally=tally,
            )
            break
        except _RetryableError as exc:
            if attempt == retries:
                raise DownloadError(
                    f"cannot download {url}: {exc} (tried {retries + 1} time(s); run again to resume from {part.name})"
                ) from exc
            delay = min(_BACKOFF_SECONDS * 2**attempt, _BACKOFF_MAX_SECONDS)
            logger.warning("download of %s interrupted (%s); retrying in %.1f s", url, exc, delay)
            time.sleep(delay)

    verified = False
    if expected is not None:
        actual = _digest_of(part, algorithm)
        if actual != expected:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{url}: {algorithm} mismatch (expected {expected}, got {actual}); the file was deleted"
            )
        verified = True
    os.replace(part, dest)
    return DownloadResult(dest, tally.received, tally.resumed, verified)


def _marker_path(archive: Path, dest_dir: Path) -> Path:
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
    marker = _marker_path(archive, dest)
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


def download_librispeech(
    root: str | Path,
    subsets: Sequence[str],
    *,
    base_url: str = LIBRISPEECH_URL,
    progress: bool = True,
) -> Path:
    """Download and extract LibriSpeech subsets into ``root``; subsets already extracted are skipped.

    Each ``<subset>.tar.gz`` is fetched from ``base_url`` into ``root`` (resumable, md5-checked
    against :data:`LIBRISPEECH_MD5`) and extracted into ``root/LibriSpeech/<subset>``. The archive
    is kept so the extraction can be redone; delete it once the marker
    ``root/<subset>.tar.gz.extracted`` exists to free the space.

    Args:
        root: directory that receives the archives and the ``LibriSpeech`` tree.
        subsets: names from :data:`LIBRISPEECH_SUBSETS`, e.g. ``["dev-clean", "train-clean-100"]``.
        base_url: where ``<subset>.tar.gz`` lives; point it at a mirror (same files, same md5s).
        progress: show download progress bars.

    Returns:
        ``root / "LibriSpeech"``.

    Raises:
        ConfigError: a subset name is not one of :data:`LIBRISPEECH_SUBSETS`.
        DownloadError: a download or extraction failed.
    """
    if isinstance(subsets, str):
        # A bare "dev-clean" would otherwise be iterated letter by letter.
        subsets = [subsets]
    unknown = [name for name in subsets if name not in LIBRISPEECH_SUBSETS]
    if unknown:
        choices = ", ".join(LIBRISPEECH_SUBSETS)
        raise ConfigError(f"unknown LibriSpeech subset(s) {', '.join(unknown)}; choose from {choices}")
    root = Path(root)
    corpus = root / "LibriSpeech"
    for subset in dict.fromkeys(subsets):  # keeps order, drops duplicates
        archive = root / f"{subset}.tar.gz"
        marker = _marker_path(archive, root)
        if marker.exists():
            logger.info("LibriSpeech %s already extracted (%s); skipping", subset, marker)
            continue
        md5 = LIBRISPEECH_MD5.get(subset)
        if md5 is None:
            logger.warning("no md5 known for LibriSpeech %s; its archive will not be verified", subset)
        download_file(f"{base_url.rstrip('/')}/{subset}.tar.gz", archive, md5=md5, progress=progress)
        extract_tar(archive, root)
        if not (corpus / subset).is_dir():
            # Without this the marker would make every later run skip a subset that is not there.
            marker.unlink(missing_ok=True)
            raise DownloadError(f"{archive}: archive did not contain LibriSpeech/{subset}")
    return corpus


# The Free Music Archive (Defferrard et al., ISMIR 2017): 30 s clips under Creative Commons licenses (per track),
# with sha1 sums published by the dataset's authors.
FMA_URL = "https://os.unil.cloud.switch.ch/fma"
FMA_SHA1: dict[str, str] = {
    "fma_metadata": "f0df49ffe5f2a6008d7dc83c6915b31835dfe733",
    "fma_small": "ade154f733639d52e35e32f5593efe5be76c6d70",
    "fma_medium": "c67b69ea232021025fca9231fc1c7c1a063ab50b",
}


def extract_zip(archive: str | Path, dest_dir: str | Path) -> Path:
    """Safely extract a zip archive into ``dest_dir`` (members escaping it are refused); idempotent via a marker."""
    import zipfile

    archive, dest = Path(archive), Path(dest_dir)
    marker = _marker_path(archive, dest)
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


def download_fma(
    root: str | Path, subset: str = "fma_small", *, base_url: str = FMA_URL, progress: bool = True
) -> Path:
    """Download (resumable, sha1-checked) and extract an FMA subset into ``root/<subset>``."""
    if subset not in FMA_SHA1:
        raise ConfigError(f"unknown FMA subset {subset!r} (known: {', '.join(FMA_SHA1)})")
    root = Path(root)
    archive = root / f"{subset}.zip"
    download_file(f"{base_url.rstrip('/')}/{subset}.zip", archive, sha1=FMA_SHA1[subset], progress=progress)
    extract_zip(archive, root)
    return root / subset
