"""The RAG mixture math of Lewis et al. (2020), as pure functions on log-prob tensors.

RAG is a finite mixture over the K retrieved passages z_1..z_K of question x:

    p_RAG(y|x) ≈ Σ_{j≤K} p_eta(z_j|x) p_phi(y|x,z_j)

Nothing here runs a model: a generator produces log p_phi(y_i|x,z_j,y_<i) as a
``[B, K, T]`` tensor (passage axis explicit, never folded into the batch), the
retriever produces scores ``[B, K]``, and these functions combine them.

* :func:`log_prior` — the passage prior p_eta(z|x) (§2.1), defined once in
  :mod:`mixrag.retriever.prior` (it also gives the retriever's hits their prior) and
  re-exported here.
* :mod:`~mixrag.mixture.marginal` — RAG-Sequence and RAG-Token marginals and the
  RAG-Token next-token mixture used for decoding (§2.1, §2.5).
* :mod:`~mixrag.mixture.posterior` — passage posteriors p(z|x,y), sequence- and
  token-level.
* :mod:`~mixrag.mixture.loss` — negative marginal log-likelihood for training (§2.4),
  with optional label smoothing.
"""

from mixrag.mixture.loss import (
    mean_vocab_logprobs,
    rag_sequence_nll,
    rag_token_nll,
    smoothed_token_logprobs,
)
from mixrag.mixture.marginal import (
    log_mixture,
    rag_sequence_logprob,
    rag_token_logprob,
    rag_token_next_logprobs,
    rag_token_token_logprobs,
    sequence_logprobs,
)
from mixrag.mixture.posterior import rag_token_posterior, sequence_posterior, token_posterior
from mixrag.retriever.prior import log_prior

__all__ = [
    "log_mixture",
    "log_prior",
    "mean_vocab_logprobs",
    "rag_sequence_logprob",
    "rag_sequence_nll",
    "rag_token_logprob",
    "rag_token_next_logprobs",
    "rag_token_nll",
    "rag_token_posterior",
    "rag_token_token_logprobs",
    "sequence_logprobs",
    "sequence_posterior",
    "smoothed_token_logprobs",
    "token_posterior",
]
