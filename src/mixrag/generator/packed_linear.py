"""Linear layers whose bfloat16 weights are laid out once for oneDNN, not on every call.

On a CPU, PyTorch runs a bfloat16 ``F.linear`` through oneDNN (AMX tiles where the CPU
has them), and oneDNN first reorders the plain ``[out, in]`` weight into its blocked
layout, on every call. For the few rows of a decoding step that reorder is a large part
of the product: measured on a 2-core Xeon with AMX (docs/BENCHMARKS.md), a 4864 × 896
MLP weight at 50 rows takes 1.03 ms eagerly and 0.72 ms pre-packed, the 151,936 × 896
vocabulary projection 23.5 ms and 12.6 ms. Pre-packing is what ``torch.compile``'s
``freezing`` does for CPU linears; this does only that, in eager mode, with the
same oneDNN kernels, so no graph capture and no compile time.

:func:`install` turns every plain ``nn.Linear`` of a bfloat16 model on the CPU into a
:class:`PackedLinear` (a subclass: the same module, the same ``Parameter`` objects, the
same ``state_dict`` and weights fingerprint). Its forward uses the packed copy only
where that is safe and the same computation:

* no autograd (``torch.no_grad``/``inference_mode`` or nothing requires grad): training
  takes the plain path;
* the packed copy matches the weight now: it is keyed by the weight tensor, its data
  pointer and its in-place version counter, so an optimizer step, ``load_state_dict``
  or a replaced parameter repacks it on the next call. An edit through ``weight.data``
  (peft's in-place adapter merge does one) moves none of these, as it does not move
  the weights fingerprint either: call :func:`install` again after one (it repacks).

Results equal the plain path's up to the last bit of a bfloat16 (oneDNN's own kernels;
the plain path itself differs as much between row counts). The packed copies cost the
weights' size again in memory (about 1 GB for Qwen2.5-0.5B).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

_KEY = tuple[int, int, int]  # (the weight's id, its data pointer, its in-place version)


def available() -> bool:
    """Whether this PyTorch has oneDNN's packed bfloat16 linear and the CPU runs it natively."""
    ops = getattr(torch.ops, "mkldnn", None)
    return (
        torch.backends.mkldnn.is_available()
        and ops is not None
        and hasattr(ops, "_reorder_linear_weight")
        and hasattr(ops, "_linear_pointwise")
        and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


class PackedLinear(nn.Linear):
    """An ``nn.Linear`` that keeps a oneDNN-packed copy of its bfloat16 weight for inference."""

    _packed: tuple[_KEY, torch.Tensor] | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if (
            x.dtype != torch.bfloat16
            or weight.dtype != torch.bfloat16
            or x.device.type != "cpu"
            or x.dim() < 2
            or (torch.is_grad_enabled() and (weight.requires_grad or x.requires_grad))
        ):
            return F.linear(x, weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed(), self.bias, "none", [], "")

    def packed(self) -> torch.Tensor:
        """The packed weight, repacked when the weight changed since it was made."""
        weight = self.weight
        key = (id(weight), weight.data_ptr(), weight._version)
        current = self.__dict__.get("_packed")
        if current is None or current[0] != key:
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach())
            current = (key, packed)
            self.__dict__["_packed"] = current
        return current[1]

    def __getstate__(self) -> dict[str, Any]:
        # copies and pickles carry the weights, not the packed copy (made again on use)
        state = super().__getstate__()
        state = dict(state)
        state.pop("_packed", None)
        return state


_lock = threading.Lock()


def install(model: nn.Module, *, repack: bool = True) -> int:
    """Pack every plain bfloat16 ``nn.Linear`` of ``model`` on the CPU; returns how many
    layers are packed.

    Does nothing (returns 0) when oneDNN's packed bfloat16 linear is not available
    here. Packs eagerly, so the first answer does not pay for it. Layers already packed
    are packed again from their weights as they are now, unless ``repack`` is False
    (a generator set up over a model another generator packed: their copies are checked
    against the weights on every call anyway).
    """
    if not available():
        return 0
    count = 0
    with _lock:
        for module in model.modules():
            if type(module) is PackedLinear:
                if repack:
                    module.__dict__.pop("_packed", None)
                module.packed()
                count += 1
            elif (
                type(module) is nn.Linear
                and module.weight.dtype == torch.bfloat16
                and module.weight.device.type == "cpu"
            ):
                module.__class__ = PackedLinear
                cast(PackedLinear, module).packed()
                count += 1
    if count:
        logger.info("packed %d bfloat16 linear layers for oneDNN", count)
    return count


def uninstall(model: nn.Module) -> int:
    """Turn :class:`PackedLinear` layers back into plain ``nn.Linear``; returns how many."""
    count = 0
    with _lock:
        for module in model.modules():
            if type(module) is PackedLinear:
                module.__dict__.pop("_packed", None)
                object.__setattr__(module, "__class__", nn.Linear)
                count += 1
    return count
