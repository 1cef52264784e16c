"""The Python versions pyproject admits are the ones the code and its checks are written for."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> str:
    return (ROOT / "pyproject.toml").read_text()


def test_mypy_and_ruff_check_the_oldest_supported_python() -> None:
    text = _pyproject()
    oldest = re.search(r'requires-python\s*=\s*">=(\d+)\.(\d+)"', text)
    assert oldest, "requires-python must state a lower bound"
    major, minor = oldest.groups()
    assert re.search(rf'^python_version\s*=\s*"{major}\.{minor}"', text, re.M), "mypy must check the oldest Python"
    assert re.search(rf'^target-version\s*=\s*"py{major}{minor}"', text, re.M), "ruff must target the oldest Python"


def test_training_config_loads_without_tomllib(tmp_path: Path) -> None:
    """On Python 3.10 there is no tomllib: the config loader must fall back to tomli (a dependency there).

    Simulated in a child process: the interpreter reports 3.10, ``import tomllib`` fails, and ``tomli`` is the
    same parser under its PyPI name.
    """
    config = ROOT / "recipes" / "librispeech" / "conf" / "debug.toml"
    script = textwrap.dedent(
        f"""
        import sys, tomllib
        import vqaudio.config, vqaudio.models.builders  # the rest of the package, imported as usual
        sys.modules["tomli"] = tomllib
        sys.modules["tomllib"] = None  # import tomllib now raises ImportError, as on 3.10
        sys.version_info = (3, 10, 14, "final", 0)
        from vqaudio.training.config import load_config
        print(load_config({str(config)!r}).name)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "debug-16k"
    assert "tomli" in _pyproject() and "python_version < '3.11'" in _pyproject()


def test_every_subpackage_is_installed() -> None:
    """pyproject lists the packages explicitly: a new subpackage left out would be missing from a wheel."""
    listed = set(re.findall(r'"(vqaudio(?:\.[a-z_]+)*)"', _pyproject().split("packages = [", 1)[1].split("]", 1)[0]))
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "vqaudio").rglob("__init__.py")}
    assert found <= listed, f"not installed: {sorted(found - listed)}"
