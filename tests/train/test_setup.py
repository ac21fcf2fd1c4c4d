"""Setting up a run: the CPU flag check, the run folder, the optimizer's groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixrag.errors import MixragError
from mixrag.train import TrainConfig
from mixrag.train.checkpoint import checkpoint_path
from mixrag.train.setup import cpu_has_bfloat16_units, open_run, optimizer_for


def test_cpu_bfloat16_units_are_read_from_the_cpu_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")
    assert cpu_has_bfloat16_units(info) is False
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_bfloat16_units(info) is True
    assert cpu_has_bfloat16_units(tmp_path / "missing") is None


def test_a_new_run_keeps_its_config_and_refuses_a_folder_that_holds_one(tmp_path: Path) -> None:
    cfg = TrainConfig(k=3)
    assert open_run(tmp_path / "run", None, cfg, resume=False) == (cfg, None)  # type: ignore[arg-type]
    checkpoint_path(tmp_path / "run").mkdir(parents=True)
    with pytest.raises(MixragError, match="--resume"):
        open_run(tmp_path / "run", None, cfg, resume=False)  # type: ignore[arg-type]
    with pytest.raises(MixragError, match="not a mixrag checkpoint"):
        open_run(tmp_path / "other", None, cfg, resume=True)  # type: ignore[arg-type]


def test_optimizer_groups_q_first_then_the_trainable_generator() -> None:
    class Query:
        def __init__(self) -> None:
            self.layer = torch.nn.Linear(2, 2)

        def parameters(self) -> list[torch.nn.Parameter]:
            return list(self.layer.parameters())

    lm = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    lm[0].requires_grad_(False)
    cfg = TrainConfig(lr=1e-3, lr_retriever=1e-5)
    opt = optimizer_for(Query(), lm, cfg)  # type: ignore[arg-type]
    assert [g["lr"] for g in opt.param_groups] == [1e-5, 1e-3]
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]  # lm[1] only
    frozen = TrainConfig(freeze="generator")
    assert len(optimizer_for(Query(), lm, frozen).param_groups) == 1  # type: ignore[arg-type]
    with pytest.raises(MixragError, match="nothing to train"):
        optimizer_for(None, lm, frozen)
