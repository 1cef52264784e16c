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

This module holds the corpus catalogue (LibriSpeech, FMA); the download and extraction mechanics live in
:mod:`vqaudio.data.fetch` and :mod:`vqaudio.data.archive`, and their public names are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from vqaudio.data.archive import extract_tar, extract_zip, marker_path
from vqaudio.data.fetch import DownloadError, DownloadResult, download_file
from vqaudio.errors import ConfigError

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
        marker = marker_path(archive, root)
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
