"""Encoders: the dense bi-encoder d(z), q(x) of the retriever p_eta(z|x) ∝ exp(d(z)ᵀq(x))."""

from mixrag.encoders.base import Encoder, passage_input
from mixrag.encoders.config import DEFAULT_ENCODER, EncoderConfig
from mixrag.encoders.sentence import SentenceTransformerEncoder

__all__ = [
    "DEFAULT_ENCODER",
    "Encoder",
    "EncoderConfig",
    "SentenceTransformerEncoder",
    "passage_input",
]
