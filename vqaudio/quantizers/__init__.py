"""Quantizers: straight-through / EMA vector quantization, residual VQ, and an identity for tests."""

from vqaudio.quantizers.base import BaseQuantizer, QuantizerOutput
from vqaudio.quantizers.identity import IdentityQuantizer
from vqaudio.quantizers.rvq import ResidualVectorQuantizer, RVQConfig
from vqaudio.quantizers.vq import VectorQuantizer, VQConfig, kmeans

__all__ = [
    "BaseQuantizer",
    "IdentityQuantizer",
    "QuantizerOutput",
    "RVQConfig",
    "ResidualVectorQuantizer",
    "VQConfig",
    "VectorQuantizer",
    "kmeans",
]
