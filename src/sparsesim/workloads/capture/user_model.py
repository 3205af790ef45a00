"""The user's own model for ``trace capture --model FILE.py:NAME`` or ``--model package.module:NAME``.

:func:`parse_model_ref` tells a zoo name from a reference to user code (torch-free);
:func:`load_user_model` imports the file or module, finds ``NAME`` and turns what it gives
into a :class:`UserModel`. ``NAME`` is one of

* an ``nn.Module`` instance;
* a callable with no required arguments returning an ``nn.Module``;
* a callable returning a dict with ``model`` (required), ``inputs(batch_size, generator)``
  returning one batch (a tensor or a tuple of positional inputs), ``loss(output, inputs)``
  returning a scalar tensor, ``optimizer(parameters)`` returning a torch optimizer, and
  ``tokenizer`` (a Hugging Face tokenizer, which ``sparsesim codesign --model FILE.py:NAME``
  needs beside a causal LM ``model``; capture ignores it) (all but ``model`` optional).

Every failure is an :class:`~sparsesim.core.errors.InputError` naming ``--model``: a file
that does not exist, a module that does not import, a name that is not there, a callable
that raises (with the exception's type and message), a result of the wrong type.
Importing a file runs it, exactly as ``python FILE.py`` would run its top level.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError, arg_error
from sparsesim.core.registry import suggest

ARG = "model"  # the argument these errors name (the command line says --model)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DICT_KEYS = ("model", "inputs", "loss", "optimizer", "tokenizer")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelRef:
    """Where the user's model is: a Python file or an importable module, and the name in it."""

    source: str  # the file path or the dotted module name, as given
    name: str  # the attribute in it
    is_file: bool

    def __str__(self) -> str:
        return f"{self.source}:{self.name}"


def parse_model_ref(text: str) -> ModelRef | None:
    """``"path/net.py:make"`` or ``"pkg.mod:make"`` -> :class:`ModelRef`; a zoo name (no ``:``) -> ``None``."""
    if ":" not in text:
        if text.endswith(".py") or "/" in text or "\\" in text:
            raise arg_error(ARG, f"{text}: name the model in it, as {text}:NAME")
        return None
    source, _, name = text.rpartition(":")
    if not source or not _IDENTIFIER.fullmatch(name):
        raise arg_error(ARG, f"expected FILE.py:NAME or package.module:NAME, got {text!r}")
    is_file = source.endswith(".py") or "/" in source or "\\" in source
    if not is_file and not all(_IDENTIFIER.fullmatch(part) for part in source.split(".")):
        raise arg_error(ARG, f"{source!r} is neither a .py file nor a dotted module name")
    return ModelRef(source=source, name=name, is_file=is_file)


def _raised(what: str, exc: BaseException) -> InputError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return arg_error(ARG, f"{what} raised {type(exc).__name__}" + (f": {message}" if message else ""))


def _import(ref: ModelRef) -> object:
    """The module ``ref`` points to, imported (a file as a fresh, uniquely named module)."""
    if not ref.is_file:
        try:
            return importlib.import_module(ref.source)
        except ModuleNotFoundError as exc:
            if exc.name and ref.source.startswith(exc.name):  # the module itself, not one it imports
                raise arg_error(ARG, f"no module named {ref.source!r} (is it on PYTHONPATH?)") from None
            raise _raised(f"importing {ref.source}", exc) from None
        except Exception as exc:  # the user's module failed at import: report it as their input
            raise _raised(f"importing {ref.source}", exc) from None
    path = Path(ref.source)
    if not path.is_file():
        raise arg_error(ARG, f"{path}: no such file")
    module_name = f"_sparsesim_user_model_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise arg_error(ARG, f"{path}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise _raised(f"running {path}", exc) from None
    return module


def find_callable(ref: ModelRef) -> object:
    """The object named ``ref.name`` in ``ref``'s file or module."""
    module = _import(ref)
    if not hasattr(module, ref.name):
        public = [n for n in vars(module) if not n.startswith("_")]
        raise arg_error(ARG, f"{ref.source} has no {ref.name!r}{suggest(ref.name, public)}")
    return getattr(module, ref.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserModel:
    """What the user's ``NAME`` gave: the module and the optional custom pieces."""

    model: object  # nn.Module
    inputs: Callable | None = None  # (batch_size, generator) -> one batch
    loss: Callable | None = None  # (output, inputs) -> scalar tensor
    optimizer: Callable | None = None  # (parameters) -> torch.optim.Optimizer
    tokenizer: object | None = None  # a Hugging Face tokenizer (codesign)


def build_user_model(obj: object, label: str) -> UserModel:
    """Turn ``obj`` (a module, or a callable returning one or a dict) into a :class:`UserModel`."""
    from torch import nn

    if isinstance(obj, nn.Module):
        return UserModel(model=obj)
    if not callable(obj):
        raise arg_error(ARG, f"{label} is a {type(obj).__name__}, not an nn.Module or a callable returning one")
    try:
        made = obj()
    except Exception as exc:  # the user's code: its failure is bad input, reported in one line
        raise _raised(f"{label}()", exc) from None
    if isinstance(made, nn.Module):
        return UserModel(model=made)
    if isinstance(made, dict):
        unknown = sorted(set(made) - set(DICT_KEYS))
        if unknown:
            raise arg_error(ARG, f"{label}() returned a dict with unknown key {unknown[0]!r}"
                                    f"{suggest(unknown[0], DICT_KEYS)}")
        if not isinstance(made.get("model"), nn.Module):
            raise arg_error(ARG, f"{label}() returned a dict whose 'model' is "
                                    f"{type(made.get('model')).__name__}, not an nn.Module")
        for key in DICT_KEYS[1:4]:
            if made.get(key) is not None and not callable(made[key]):
                raise arg_error(ARG, f"{label}() returned a dict whose {key!r} is not callable")
        return UserModel(model=made["model"], inputs=made.get("inputs"), loss=made.get("loss"),
                         optimizer=made.get("optimizer"), tokenizer=made.get("tokenizer"))
    raise arg_error(ARG, f"{label}() returned a {type(made).__name__}, not an nn.Module or a dict with 'model'")


def load_user_model(ref: ModelRef) -> UserModel:
    """Import ``ref`` and build the model (call it under the caller's seeded RNG)."""
    return build_user_model(find_callable(ref), str(ref))
