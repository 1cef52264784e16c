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

from vqaudio.atomic import STALE_SECONDS, atomic_open, write_atomic


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


def test_stale_temp_files_of_the_target_are_swept_on_the_next_write(tmp_path: Path) -> None:
    """A killed writer's temp file goes at the next write to the same target once an hour has passed over it;
    nothing else does: a fresh one (its writer may be alive), another target's, or a name not of our pattern."""
    old = time.time() - STALE_SECONDS - 60
    stale = tmp_path / ".out.vqt.0badc0de.tmp"
    names = [
        ".out.vqt.1234abcd.tmp",  # fresh
        ".other.vqt.0badc0de.tmp",  # another target's
        ".out.vqt.0BADC0DE.tmp",  # not our pattern: upper-case hex
        ".out.vqt.0badc0de.tmp.bak",
        "out.vqt.0badc0de.tmp",  # not hidden
    ]
    for name in [stale.name, *names]:
        (tmp_path / name).write_bytes(b"x" * 100)
        if name != ".out.vqt.1234abcd.tmp":
            os.utime(tmp_path / name, (old, old))
    (tmp_path / ".out.vqt.abcdef01.tmp").mkdir()  # a folder of our pattern is not ours to remove
    os.utime(tmp_path / ".out.vqt.abcdef01.tmp", (old, old))
    write_atomic(tmp_path / "out.vqt", b"tokens")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([*names, ".out.vqt.abcdef01.tmp", "out.vqt"])
