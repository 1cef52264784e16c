"""The one atomic writer: all or nothing, even when the writing process is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vqaudio.atomic import atomic_open, write_atomic


def test_write_replace_and_refuse(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    with pytest.raises(FileExistsError):
        write_atomic(target, b"three", overwrite=False)
    assert target.read_bytes() == b"two"
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # no temp file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == 0o666 & ~umask  # the umask decides, as for any new file


def test_a_killed_writer_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(b"old content")
    started = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from vqaudio.atomic import atomic_open
        with atomic_open({str(target)!r}) as fh:
            for i in range(10_000):
                fh.write(b"x" * 65536)
                if i == 10:
                    fh.flush()
                    Path({str(started)!r}).touch()
                    time.sleep(30)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while not started.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert started.exists()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.read_bytes() == b"old content"
