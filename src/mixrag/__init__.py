"""mixrag: retrieval-augmented generation as a finite mixture model (Lewis et al., 2020)."""

from mixrag.types import Hit, Passage

__version__ = "0.1.0"

__all__ = ["Hit", "Passage", "__version__"]
