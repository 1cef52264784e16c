"""Resumable, checksum-verified HTTP downloads: :func:`download_file` and the :class:`DownloadError` it raises.

A download writes to ``<dest>.part``, resumes it with a ``Range`` request after an interruption, and renames it to
``<dest>`` only once the checksum matches.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from vqaudio.errors import VQAudioError

logger = logging.getLogger(__name__)

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
