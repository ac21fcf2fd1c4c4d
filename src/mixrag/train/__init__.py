"""Joint training of the query encoder and the generator from (question, answer) pairs.

``mixrag.train.trainer.Trainer`` minimises -log p_RAG(y|x) with the passage latent
(Lewis et al. 2020, §2.4); ``TrainConfig`` says how; checkpoints are run folders usable
as ``--model``. The run's setup, loop pieces, early stopping of q(x), dev figures, plots
and randomness are the modules ``setup``, ``loop``, ``early_stopping``, ``dev``,
``plots`` and ``rng``. This package's top level holds what is cheap to import (no
torch), so the CLI can take its option defaults from ``TrainConfig``; import ``Trainer``
from ``mixrag.train.trainer``.
"""

from mixrag.train.checkpoint import Checkpoint, find_checkpoint, read_checkpoint
from mixrag.train.config import TrainConfig
from mixrag.train.data import load_pairs, split_by_article, write_jsonl

__all__ = [
    "Checkpoint",
    "TrainConfig",
    "find_checkpoint",
    "load_pairs",
    "read_checkpoint",
    "split_by_article",
    "write_jsonl",
]
