"""A token prior on disk: ``prior.safetensors`` (float16 weights) and ``prior.json`` (config, checksum, and the
codes it models), kept in the directory of the codec whose codes it models.

The JSON names the codec's codes checksum and the code search, so a prior is never used on codes it was not
trained for: a codec release that changes its codes also invalidates its prior.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vqaudio.atomic import write_atomic
from vqaudio.config import from_dict
from vqaudio.errors import ConfigError, ModelError
from vqaudio.models.io import sha256_file
from vqaudio.prior.model import PriorConfig, TokenPrior

PRIOR_WEIGHTS = "prior.safetensors"
PRIOR_CONFIG = "prior.json"
PRIOR_FORMAT = 1


@dataclass(frozen=True)
class PriorCard:
    """What a prior file says of itself. ``codes_checksum`` and ``code_search`` are the codec's (see
    :class:`vqaudio.tokenfile.TokenHeader`); ``checksum`` is the sha256 of the weights file."""

    name: str
    codec: str
    codes_checksum: str
    code_search: str
    checksum: str
    config: PriorConfig
    card: dict[str, Any]


def save_prior(
    directory: str | Path,
    model: TokenPrior,
    *,
    name: str,
    codec: str,
    codes_checksum: str,
    code_search: str,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write ``prior.safetensors`` and ``prior.json`` into ``directory``; returns the JSON's path."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    write_atomic(directory / PRIOR_WEIGHTS, save(state))
    meta = {
        "format": PRIOR_FORMAT,
        "name": name,
        "codec": codec,
        "codes_checksum": codes_checksum,
        "code_search": code_search,
        "weights": {"file": PRIOR_WEIGHTS, "sha256": sha256_file(directory / PRIOR_WEIGHTS)},
        "prior": dataclasses.asdict(model.config),
        "card": card or {},
    }
    write_atomic(directory / PRIOR_CONFIG, (json.dumps(meta, indent=2) + "\n").encode())
    return directory / PRIOR_CONFIG


def has_prior(directory: str | Path) -> bool:
    return (Path(directory) / PRIOR_CONFIG).is_file()


def load_prior(directory: str | Path) -> tuple[TokenPrior, PriorCard]:
    """The prior in ``directory`` (eval mode, float32) and its card; refuses a file whose checksum is off."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / PRIOR_CONFIG
    try:
        meta = json.loads(path.read_text())
        weights = directory / meta["weights"]["file"]
        if sha256_file(weights) != meta["weights"]["sha256"]:
            raise ModelError(f"{weights}: checksum does not match {path} (a damaged or replaced file)")
        config = from_dict(PriorConfig, meta["prior"], str(path))
        model = TokenPrior(config)
        model.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
        card = PriorCard(
            name=str(meta["name"]),
            codec=str(meta["codec"]),
            codes_checksum=str(meta["codes_checksum"]),
            code_search=str(meta["code_search"]),
            checksum=str(meta["weights"]["sha256"]),
            config=config,
            card=dict(meta.get("card", {})),
        )
    except FileNotFoundError as e:
        raise ModelError(f"{directory}: no token prior here ({Path(e.filename).name} is missing)") from None
    except (OSError, KeyError, TypeError, ValueError, ConfigError, RuntimeError, SafetensorError) as e:
        raise ModelError(f"{path}: not a readable token prior ({type(e).__name__}: {e})") from None
    return model.eval(), card
