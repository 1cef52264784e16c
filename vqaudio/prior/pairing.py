"""Find the token prior that belongs to a loaded tokenizer, and refuse one made for other codes."""

from __future__ import annotations

from pathlib import Path

from vqaudio.errors import ModelError
from vqaudio.prior.io import PriorCard, has_prior, load_prior
from vqaudio.prior.model import TokenPrior
from vqaudio.tokenfile import parse_code_search
from vqaudio.tokenizer import CODES_VERSION, Tokenizer


def prior_for(tok: Tokenizer, directory: str | Path | None = None) -> tuple[TokenPrior, PriorCard]:
    """The prior in ``directory`` (default: the model's own folder) for ``tok``'s codes.

    Raises:
        ModelError: no prior there, or one trained on another codec's codes or another codes version.
    """
    where = Path(directory) if directory is not None else tok.loaded.path
    if where is None or not has_prior(where):
        raise ModelError(f"model {tok.name} has no token prior ({where} holds no prior.json)")
    model, card = load_prior(where)
    if card.codec != tok.name or card.codes_checksum != tok.codes_checksum:
        raise ModelError(
            f"the prior in {where} models the codes of {card.codec} (codes checksum {card.codes_checksum[:16]}), "
            f"not those of the loaded {tok.name} ({tok.codes_checksum[:16]})"
        )
    search = parse_code_search(card.code_search)
    if search is None or search[0] != CODES_VERSION:
        raise ModelError(f"the prior in {where} was trained on codes of another code search ({card.code_search!r})")
    return model, card
