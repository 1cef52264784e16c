"""Tests for vqaudio.data.download against a local HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import soundfile as sf

from vqaudio.data import download, fetch
from vqaudio.data.download import (
    DownloadError,
    download_file,
    download_librispeech,
    extract_tar,
)
from vqaudio.errors import ConfigError, VQAudioError

_PAYLOAD_SIZE = 200_000
_CHUNK = 16 * 1024


@dataclass
class _ServerState:
    """What the handler serves and how it misbehaves; the test edits it between calls."""

    root: Path
    support_range: bool = True
    drop_after: int = 0  # bytes of body sent before the connection is cut ...
    drops_left: int = 0  # ... for this many of the next requests
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)  # (path, Range, status)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``state.root`` with single-range ``bytes=N-``/``bytes=N-M`` support."""

    server: _StateServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean

    def do_GET(self) -> None:
        state = self.server.state
        range_header = self.headers.get("Range")
        path = state.root / unquote(urlsplit(self.path).path).lstrip("/")
        if not path.is_file():
            state.requests.append((self.path, range_header, 404))
            self.send_error(404)
            return
        data = path.read_bytes()
        status, start, end = 200, 0, len(data)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if match is not None and state.support_range:
            start = int(match.group(1))
            if start >= len(data):
                state.requests.append((self.path, range_header, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            end = min(int(match.group(2)) + 1, len(data)) if match.group(2) else len(data)
            status = 206
        state.requests.append((self.path, range_header, status))
        body = data[start:end]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        self.end_headers()
        if state.drops_left > 0:
            state.drops_left -= 1
            # Send part of the promised body, then cut the connection: the client sees an
            # IncompleteRead, just as with a real network failure mid-download.
            self.wfile.write(body[: state.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class _StateServer(http.server.ThreadingHTTPServer):
    def __init__(self, state: _ServerState) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.state = state


@dataclass
class _Server:
    url: str
    state: _ServerState

    def publish(self, name: str, data: bytes) -> str:
        """Serve ``data`` as ``/name``; returns its URL."""
        (self.state.root / name).write_bytes(data)
        return f"{self.url}/{name}"


@pytest.fixture(autouse=True)
def _only_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that would connect anywhere but 127.0.0.1 (e.g. the real openslr or a proxy)."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real_create_connection = socket.create_connection

    def guarded(address: tuple[str, int], *args: object, **kwargs: object) -> socket.socket:
        assert address[0] == "127.0.0.1", f"test tried to reach {address}"
        return real_create_connection(address, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "create_connection", guarded)
    # Retries in these tests should not wait.
    monkeypatch.setattr(fetch, "_BACKOFF_SECONDS", 0.0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "served"
    root.mkdir()
    state = _ServerState(root)
    httpd = _StateServer(state)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield _Server(f"http://127.0.0.1:{httpd.server_address[1]}", state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _payload(size: int = _PAYLOAD_SIZE) -> bytes:
    return np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _flac_bytes() -> bytes:
    """0.1 s of a 440 Hz sine at 16 kHz, mono, as FLAC."""
    t = np.arange(1600) / 16000
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * 440 * t), 16000, format="FLAC")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _librispeech_tar_gz(subset: str = "dev-clean", extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A tiny .tar.gz with the LibriSpeech layout: one speaker 1, chapter 2, utterance 0000."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        _add(tar, f"LibriSpeech/{subset}/1/2/1-2-0000.flac", _flac_bytes())
        _add(tar, f"LibriSpeech/{subset}/1/2/1-2.trans.txt", b"1-2-0000 A SINE WAVE\n")
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


def test_download_verifies_md5(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = server.publish("file.bin", data)
    dest = tmp_path / "out" / "file.bin"
    result = download_file(url, dest, md5=_md5(data), chunk_size=_CHUNK, progress=False)
    assert result == download.DownloadResult(dest, len(data), resumed=False, verified=True)
    assert dest.read_bytes() == data
    assert not (tmp_path / "out" / "file.bin.part").exists()


def test_interrupted_download_resumes(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = server.publish("file.bin", data)
    dest = tmp_path / "file.bin"
    part = tmp_path / "file.bin.part"
    server.state.drop_after, server.state.drops_left = 50_000, 1
    with pytest.raises(DownloadError, match="file.bin"):
        download_file(url, dest, md5=_md5(data), chunk_size=_CHUNK, retries=0, progress=False)
    assert not dest.exists()
    partial = part.stat().st_size
    assert 0 < partial < len(data)

    result = download_file(url, dest, md5=_md5(data), chunk_size=_CHUNK, progress=False)
    assert result.resumed and result.verified
    assert result.bytes_downloaded == len(data) - partial < len(data)
    assert server.state.requests[-1][1] == f"bytes={partial}-"
    assert dest.read_bytes() == data
    assert not part.exists()


def test_retry_resumes_within_one_call(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = server.publish("file.bin", data)
    server.state.drop_after, server.state.drops_left = 30_000, 2
    result = download_file(url, tmp_path / "f", md5=_md5(data), chunk_size=_CHUNK, retries=2, progress=False)
    assert result.resumed and result.verified
    assert result.bytes_downloaded == len(data)  # every byte came over the wire in this call
    assert [status for _, _, status in server.state.requests] == [200, 206, 206]
    assert (tmp_path / "f").read_bytes() == data


def test_md5_mismatch_raises_and_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    url = server.publish("file.bin", _payload())
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="md5 mismatch") as info:
        download_file(url, dest, md5="0" * 32, progress=False)
    assert isinstance(info.value, VQAudioError)
    assert "\n" not in str(info.value)
    assert not dest.exists()
    assert not (tmp_path / "file.bin.part").exists()


def test_404_raises_download_error_naming_url(server: _Server, tmp_path: Path) -> None:
    url = f"{server.url}/missing.tar.gz"
    with pytest.raises(DownloadError, match=re.escape(url)):
        download_file(url, tmp_path / "missing.tar.gz", progress=False)
    assert len(server.state.requests) == 1  # a 404 is not retried
    assert not (tmp_path / "missing.tar.gz").exists()


def test_unreachable_server_raises_after_retries(tmp_path: Path) -> None:
    # Bind then close a socket to get a port nothing listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.bin"
    with pytest.raises(DownloadError, match=re.escape(url)):
        download_file(url, tmp_path / "x.bin", retries=1, timeout=2.0, progress=False)


def test_existing_dest_short_circuits(server: _Server, tmp_path: Path) -> None:
    data = b"already here"
    dest = tmp_path / "file.bin"
    dest.write_bytes(data)
    url = f"{server.url}/file.bin"  # not published: any request would 404
    assert download_file(url, dest, progress=False) == download.DownloadResult(dest, 0, False, False)
    verified = download_file(url, dest, md5=_md5(data), progress=False)
    assert verified == download.DownloadResult(dest, 0, False, True)
    assert server.state.requests == []


def test_existing_dest_with_wrong_md5_is_replaced(server: _Server, tmp_path: Path) -> None:
    data = _payload(20_000)
    url = server.publish("file.bin", data)
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"stale")
    result = download_file(url, dest, md5=_md5(data), progress=False)
    assert result.verified and result.bytes_downloaded == len(data)
    assert dest.read_bytes() == data


def test_server_without_range_support_restarts(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = server.publish("file.bin", data)
    server.state.support_range = False
    (tmp_path / "file.bin.part").write_bytes(b"garbage that must not survive")
    result = download_file(url, tmp_path / "file.bin", md5=_md5(data), chunk_size=_CHUNK, progress=False)
    assert not result.resumed and result.verified
    assert result.bytes_downloaded == len(data)
    assert server.state.requests[0][1:] == ("bytes=29-", 200)
    assert (tmp_path / "file.bin").read_bytes() == data


def test_complete_part_file_is_accepted_on_416(server: _Server, tmp_path: Path) -> None:
    data = _payload(20_000)
    url = server.publish("file.bin", data)
    (tmp_path / "file.bin.part").write_bytes(data)
    result = download_file(url, tmp_path / "file.bin", md5=_md5(data), progress=False)
    assert result == download.DownloadResult(tmp_path / "file.bin", 0, resumed=True, verified=True)
    assert server.state.requests[0][2] == 416


def test_part_file_larger_than_remote_restarts(server: _Server, tmp_path: Path) -> None:
    data = _payload(20_000)
    url = server.publish("file.bin", data)
    (tmp_path / "file.bin.part").write_bytes(data + b"trailing junk")
    result = download_file(url, tmp_path / "file.bin", progress=False)
    assert not result.resumed and result.bytes_downloaded == len(data)
    assert (tmp_path / "file.bin").read_bytes() == data


def test_librispeech_md5_table_is_well_formed() -> None:
    assert set(download.LIBRISPEECH_MD5) <= set(download.LIBRISPEECH_SUBSETS)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in download.LIBRISPEECH_MD5.values())


def test_extract_tar_librispeech_layout(tmp_path: Path) -> None:
    archive = tmp_path / "dev-clean.tar.gz"
    archive.write_bytes(_librispeech_tar_gz())
    out = tmp_path / "data"
    assert extract_tar(archive, out) == out
    flac = out / "LibriSpeech/dev-clean/1/2/1-2-0000.flac"
    audio, rate = sf.read(flac)
    assert rate == 16000 and audio.shape == (1600,)
    assert (out / "dev-clean.tar.gz.extracted").is_file()

    # Idempotent: with the marker present nothing is extracted again.
    flac.unlink()
    assert extract_tar(archive, out) == out
    assert not flac.exists()


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "evil",
    [
        _member("../evil"),
        _member("LibriSpeech/../../evil"),
        _member("/tmp/vqaudio-test-evil-absolute"),
        _member("LibriSpeech/link", tarfile.SYMTYPE, "../../evil"),
        _member("LibriSpeech/link", tarfile.SYMTYPE, "/etc/passwd"),
        _member("LibriSpeech/hard", tarfile.LNKTYPE, "../evil"),
        _member("LibriSpeech/fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink-out", "fifo"],
)
def test_extract_tar_refuses_escaping_members(tmp_path: Path, evil: tarfile.TarInfo) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_librispeech_tar_gz(extra=[evil]))
    out = tmp_path / "a" / "b"
    with pytest.raises(DownloadError, match="unsafe member") as info:
        extract_tar(archive, out)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "a" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not Path("/tmp/vqaudio-test-evil-absolute").exists()
    assert not (out / "bad.tar.gz.extracted").exists()


def test_extract_tar_refuses_symlink_stepping_stone(tmp_path: Path) -> None:
    # "d/up -> .." stays inside out/ and is allowed. "d/up2 -> up/../.." is lexically out/ itself,
    # but once "up" exists on disk it really resolves to two levels above out/.
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        tar.addfile(_member("d/up", tarfile.SYMTYPE, ".."))
        tar.addfile(_member("d/up2", tarfile.SYMTYPE, "up/../.."))
        _add(tar, "d/up2/evil", b"evil")
    out = tmp_path / "out"
    with pytest.raises(DownloadError, match="unsafe member"):
        extract_tar(archive, out)
    assert not (tmp_path / "evil").exists()


def test_download_librispeech_end_to_end(server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _librispeech_tar_gz("dev-clean")
    server.publish("dev-clean.tar.gz", archive)
    # The official md5 belongs to the real 337 MB archive; check against our tiny one instead.
    monkeypatch.setitem(download.LIBRISPEECH_MD5, "dev-clean", _md5(archive))
    root = tmp_path / "corpora"

    corpus = download_librispeech(root, ["dev-clean"], base_url=server.url + "/", progress=False)
    assert corpus == root / "LibriSpeech"
    assert sf.info(str(corpus / "dev-clean/1/2/1-2-0000.flac")).samplerate == 16000
    assert len(server.state.requests) == 1

    again = download_librispeech(root, ["dev-clean"], base_url=server.url, progress=False)
    assert again == corpus
    assert len(server.state.requests) == 1  # the marker made the second run a no-op


def test_download_librispeech_warns_without_md5(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server.publish("dev-other.tar.gz", _librispeech_tar_gz("dev-other"))
    monkeypatch.delitem(download.LIBRISPEECH_MD5, "dev-other")
    with caplog.at_level("WARNING", logger=download.__name__):
        corpus = download_librispeech(tmp_path, "dev-other", base_url=server.url, progress=False)
    assert (corpus / "dev-other/1/2/1-2.trans.txt").is_file()
    assert any("no md5" in record.getMessage() for record in caplog.records)


def test_download_librispeech_rejects_unknown_subset(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train-clean-101"):
        download_librispeech(tmp_path, ["train-clean-101"], progress=False)


def test_download_librispeech_archive_without_subset_dir(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _librispeech_tar_gz("dev-other")  # wrong contents for test-clean
    server.publish("test-clean.tar.gz", archive)
    monkeypatch.setitem(download.LIBRISPEECH_MD5, "test-clean", _md5(archive))
    with pytest.raises(DownloadError, match="LibriSpeech/test-clean"):
        download_librispeech(tmp_path, ["test-clean"], base_url=server.url, progress=False)
    assert not (tmp_path / "test-clean.tar.gz.extracted").exists()


def test_extract_zip_refuses_escaping_members(tmp_path: Path) -> None:
    import zipfile

    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("fma_small/000/000002.mp3", b"not really mp3")
    out = download.extract_zip(good, tmp_path / "out")
    assert (out / "fma_small" / "000" / "000002.mp3").read_bytes() == b"not really mp3"
    assert download.extract_zip(good, tmp_path / "out") == out  # marker makes it idempotent
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil", b"x")
    with pytest.raises(DownloadError, match="outside"):
        download.extract_zip(bad, tmp_path / "out2")
    assert not (tmp_path / "evil").exists()


def test_sha1_verification(server: _Server, tmp_path: Path) -> None:
    payload = _payload()
    url = server.publish("archive.zip", payload)
    res = download_file(url, tmp_path / "a.zip", sha1=hashlib.sha1(payload).hexdigest(), progress=False)
    assert res.verified
    with pytest.raises(DownloadError, match="sha1 mismatch"):
        download_file(url, tmp_path / "b.zip", sha1="0" * 40, progress=False)
