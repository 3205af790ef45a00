"""Sparsity features: N:M structured weights, zero-skipping MACs, delta encoding, and
activation sparsification policies. One file per feature, registered in :data:`FEATURES`;
the interface every feature implements is :mod:`sparsesim.sparsity.base`.
"""

from __future__ import annotations

from sparsesim.hardware.config import AccelConfig, build
from sparsesim.sparsity import activation_policy, delta, nm, zero_skip  # noqa: F401  (register)
from sparsesim.sparsity.base import FEATURES, NO_EFFECTS, ROLES, Feature, GemmEffects
from sparsesim.core.errors import InputError, field_error
from sparsesim.core.registry import suggest

__all__ = ["FEATURES", "ROLES", "Feature", "parse_features", "cli_sparsity", "check_hardware", "feature_labels",
           "composed_effects", "in_order"]


def parse_features(raw: tuple) -> tuple:
    """Validate the config's ``sparsity`` list into feature config objects (one per kind)."""
    out = []
    seen = set()
    for i, item in enumerate(raw):
        where = f"sparsity[{i}]"
        if not isinstance(item, dict):
            raise field_error(where, f"expected a mapping with a 'kind', got {item!r}")
        kind = item.get("kind")
        if kind is None:
            raise field_error(f"{where}.kind", f"missing (choose from {', '.join(FEATURES.names())})")
        cls = FEATURES.get(kind, f"{where}.kind")
        if kind in seen:
            raise field_error(f"{where}.kind", f"{kind!r} given twice; one of each kind per run")
        seen.add(kind)
        out.append(build(cls, {k: v for k, v in item.items() if k != "kind"}, f"{where}"))
    return tuple(out)


def feature_list(items, field: str, *, arg: bool = False) -> list[dict]:
    """Sparsity features given as CLI strings (``"nm:2:4"``) and/or config mappings -> config
    mappings (one item or a list of them); anything else is refused naming ``field``. The one
    normalisation behind the Python API's ``sparsity=`` and a sweep spec's sparsity settings.
    ``arg``: ``field`` is the name of a Python API argument (see :func:`cli_sparsity`)."""
    from collections.abc import Mapping

    if isinstance(items, (str, Mapping)):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise InputError(f"{field}: expected \"nm:2:4\"-style strings or feature mappings, got {items!r}",
                         arg=field if arg else None)
    out: list[dict] = []
    for item in items:
        if isinstance(item, str):
            out.extend(cli_sparsity([item], field, arg=arg))
        elif isinstance(item, Mapping):
            out.append(dict(item))
        else:
            raise InputError(f"{field}: expected \"nm:2:4\"-style strings or feature mappings, got {item!r}",
                             arg=field if arg else None)
    return out


def cli_sparsity(texts: list[str], field: str = "--sparsity", *, arg: bool = False) -> list[dict]:
    """``["nm:2:4", "zero_skip:input:skipping", "delta:0.05"]`` -> config mappings.

    Any field of the form ``key=value`` sets one more option of the feature, as its config
    mapping would (``zero_skip:input:skipping:weight_fetch=false``); values read as YAML
    scalars (``true``, ``64``, ``0.5``), and the feature's config checks the key and the type.
    Errors start with ``field``: the flag, a sweep spec's key, or (``arg``) the name of a
    Python API argument, which the command line turns back into its flag.
    """

    def error(message: str) -> InputError:
        return InputError(f"{field}: {message}", arg=field if arg else None)

    out = []
    for text in texts:
        kind, *fields = text.split(":")
        if kind not in FEATURES:
            raise error(f"unknown feature {kind!r}{suggest(kind, FEATURES.names())}")
        options = [f for f in fields if "=" in f]
        try:
            item = FEATURES.get(kind).from_cli([f for f in fields if "=" not in f])
        except InputError as exc:  # the feature says what is wrong; the field is the caller's
            raise error(str(exc)) from None
        for option in options:
            key, _, value = option.partition("=")
            if not key:
                raise error(f"{text!r}: option {option!r} has no name")
            if key in item:
                raise error(f"{text!r}: {key} is already given ({key}={item[key]!r}); give each key once")
            item[key] = _scalar(value)
        out.append(item)
    return out


def _scalar(text: str):
    """A CLI option value as YAML would read it: booleans, integers, floats, else the text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check_hardware(features: tuple, cfg: AccelConfig) -> None:
    """Refuse features the configured hardware cannot run (e.g. an unsupported N:M ratio)."""
    for f in features:
        f.check_hardware(cfg)


def in_order(features: tuple) -> tuple:
    """The features in their composition order (:attr:`Feature.order`, then kind)."""
    return tuple(sorted(features, key=lambda f: (f.order, f.kind)))


def composed_effects(features: tuple, phase, roles: tuple[str, str]) -> GemmEffects:
    """The OR over ``features`` of their effects on the GEMM operands of ``phase``."""
    out = NO_EFFECTS
    for f in features:
        out = out | f.effects(phase, roles)
    return out


def feature_labels(features: tuple) -> str:
    """``"nm2:4+zs-input-skipping"``, or ``"dense"``."""
    return "+".join(f.label() for f in features) or "dense"
