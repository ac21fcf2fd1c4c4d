"""Passage encoding in one process against Ray Data on a local 2-worker actor pool.

    python bench/ray_encode.py --out bench/results/ray_encode.json

The texts are the SQuAD dev corpus's passages as the encoder reads them (title and
text of each 100-word passage, from an index folder built from the SQuAD dev file).
Alternating, ``--repeats`` times: the bundled encoder in this process (2 torch
threads: both cores), and ``RayEncoder`` with 2 actors of 1 CPU each (Ray started once
beforehand; each ``encode`` is one Ray Data job that starts its actors, loads the model
in each and encodes). Reported: medians, passages/s, Ray's fixed cost per job
(measured on a 64-passage job), the cluster start-up time, and the largest difference
between the two sets of vectors.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

from common import machine, write_json
from mixrag.encoders import SentenceTransformerEncoder, passage_input
from mixrag.encoders.ray import RayEncoder, RayEncoderConfig
from mixrag.index.folder import Index

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default=str(REPO / ".bench/squad-dev-index"))
    ap.add_argument("--squad", default=str(REPO / "data/squad/squaddev_v1.1.json.gz"))
    ap.add_argument("--n", type=int, default=0, help="passages (0 = all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(2)
    index = Index.open(args.index, create=True)
    if index.store.counts()["passages"] == 0:
        index.add([args.squad])
    rowids = [r for ids, _ in index.store.iter_vectors(index.dim) for r in ids.tolist()]
    passages = index.store.passages(rowids[: args.n or None])
    texts = [passage_input(p.title, p.text) for p in passages]
    local = SentenceTransformerEncoder()
    local.load()

    import ray

    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.workers,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )
    startup = time.perf_counter() - t0
    remote = RayEncoder(
        local, RayEncoderConfig(address="auto", workers=args.workers, batch_size=256)
    )
    times: dict[str, list[float]] = {"single": [], "ray": [], "ray_64": []}
    ref = got = None
    for i in range(args.repeats):
        t0 = time.perf_counter()
        ref = local.encode(texts)
        times["single"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = remote.encode(texts)
        times["ray"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        remote.encode(texts[:64])
        times["ray_64"].append(time.perf_counter() - t0)
        logging.info("repeat %d: %s", i, {k: v[-1] for k, v in times.items()})
    ray.shutdown()
    assert ref is not None and got is not None
    med = {k: statistics.median(v) for k, v in times.items()}
    n = len(texts)
    per_passage_single = med["single"] / n
    results = {
        "machine": machine(),
        "passages": n,
        "workers": args.workers,
        "repeats": args.repeats,
        "seconds": times,
        "median_s": med,
        "passages_per_s": {"single": n / med["single"], "ray": n / med["ray"]},
        "ray_vs_single": med["single"] / med["ray"],
        # a 64-passage job minus what the single process needs for 64 passages
        "ray_job_overhead_s": med["ray_64"] - 64 * per_passage_single,
        "ray_startup_s": startup,
        "max_abs_diff": float(np.abs(ref - got).max()),
        "identical": bool(np.array_equal(ref, got)),
        "same_top10": bool(
            (
                np.argsort(-(ref[:200] @ ref.T), 1)[:, :10]
                == np.argsort(-(got[:200] @ got.T), 1)[:, :10]
            ).all()
        ),
    }
    logging.info("%s", {k: v for k, v in results.items() if k not in ("machine", "seconds")})
    write_json(args.out, results)


if __name__ == "__main__":
    main()
