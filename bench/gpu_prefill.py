"""Prompt tokens per second a GPU computes for a generator's architecture: the figure
docs/SCALING.md's capacity table divides by what a question costs.

    python bench/gpu_prefill.py --config DIR --out gpu_prefill.json

``DIR`` holds the model's config.json (the converted bundled model's folder will do):
the weights are seeded random, since the GPU machine lent here reaches no model hub and
takes 64 MiB a transfer, and a forward pass costs the same whatever the weights hold.
It times, in bfloat16 with PyTorch's SDPA attention (plain transformers, no paged
attention or CUDA graphs, so a serving engine such as vLLM is expected to do better):

* prefill: ``--batch`` rows of ``--length`` tokens, one forward pass, for each batch size;
* decode: one new token for each of ``--batch`` rows over a ``--length``-token KV cache.

Median of ``--repeats`` timed passes after two warm-ups, synchronised.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch


def timed(fn: Any, device: str, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after two warm-ups."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, required=True, help="folder with config.json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--length", type=int, default=440, help="tokens a prompt")
    ap.add_argument("--batch", default="1,5,16,64,128,256")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(args.config)
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model = model.to(args.device).eval()
    params = sum(p.numel() for p in model.parameters())
    rows: list[dict[str, Any]] = []
    for b in (int(x) for x in args.batch.split(",")):
        ids = torch.randint(0, config.vocab_size, (b, args.length), device=args.device)
        with torch.inference_mode():
            prefill = timed(lambda ids=ids: model(input_ids=ids, logits_to_keep=1), args.device,
                            args.repeats)  # fmt: skip
            cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
            step_ids = ids[:, -1:]

            def step(cache: Any = cache, step_ids: torch.Tensor = step_ids) -> None:
                model(input_ids=step_ids, past_key_values=cache, use_cache=True)
                cache.crop(-1)  # back to the prompt: every timed step is the same

            decode = timed(step, args.device, args.repeats)
        rows.append({
            "batch": b, "length": args.length,
            "prefill_s": prefill, "prefill_tokens_per_s": b * args.length / prefill,
            "decode_step_s": decode, "decode_tokens_per_s": b / decode,
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
        del cache
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device
    result = {
        "device": gpu, "torch": torch.__version__, "dtype": args.dtype,
        "model_type": config.model_type, "parameters": params,
        "layers": config.num_hidden_layers, "rows": rows,
    }  # fmt: skip
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
