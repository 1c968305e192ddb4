"""Typed configs: dataclasses, YAML recipes and dotted ``key=value`` overrides.

``from_dict(cls, d)`` builds a dataclass from a plain dict and checks every key and value:
an unknown key or a value of the wrong type raises :class:`ConfigError` with one line that
names the key and lists the valid ones. Supported field types: bool, int, float, str,
``Optional[...]``, ``Literal[...]``, ``list[...]``/``tuple[...]``, ``dict`` and nested
dataclasses, and a sub-config chosen by name (:class:`Choice`, e.g. ``model.mixer``). An int is accepted where a float is expected, and so is a string that parses as
a float (YAML 1.1 reads ``1e-3`` as a string).

Ranges: a numeric field may declare its allowed range in its metadata
(``lr: float = ranged(1e-3, lo=0, lo_open=True)``, i.e. ``field(metadata={"range": Range(...)})``);
``from_dict`` checks it, and so does it for the fields named in ``name_ranges`` (the ranges
that hold for a name in every model config: ``d_model >= 1``, ``dropout`` in [0, 1), ...,
see :data:`MODEL_RANGES`). A value out of range is a :class:`ConfigError` naming the key
and the range. ``load_yaml`` refuses a mapping with a duplicate key.
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

import yaml

from .errors import ConfigError

_MISSING = object()


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    """``A | B | None``: the first member that accepts ``value``."""
    args = get_args(tp)
    if value is None and type(None) in args:
        return None
    choice = [a for a in args if isinstance(a, type) and issubclass(a, Choice)]
    if choice:  # ``Choice | None``: the choice's own one-line errors (valid names / keys)
        return choice[0].parse(value, key)
    for a in args:
        if a is type(None):
            continue
        try:
            return _coerce(value, a, key)
        except ConfigError:
            pass
    raise ConfigError(f"config key {key!r}: expected {_type_name(tp)}, got {value!r}")


def _coerce_sequence(value: Any, tp: Any, key: str) -> list | tuple:
    """``list[X]``, ``tuple[X, ...]`` or a fixed ``tuple[A, B]``: each element checked."""
    origin = get_origin(tp)
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
    args = get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"config key {key!r}: expected {len(args)} values, got {len(value)}")
        out = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
    else:
        elt = args[0] if args else Any
        out = [_coerce(v, elt, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(out) if (origin is tuple or tp is tuple) else out


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (possibly converted)."""
    origin = get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, bool) and value not in choices:  # YAML 1.1 reads off/on/no/yes as booleans
            spelled = [c for c in (("off", "no", "false") if not value else ("on", "yes", "true")) if c in choices]
            value = spelled[0] if spelled else value
        if value not in choices:
            raise ConfigError(f"config key {key!r}: expected one of {list(choices)}, got {value!r}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        return _coerce_sequence(value, tp, key)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(tp, type) and issubclass(tp, Choice):
        return tp.parse(value, key)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where=key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"config key {key!r}: expected {tp.__name__}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Range:
    """An allowed interval for a number (or for each number of a list): lo/hi None = unbounded."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, v: float) -> bool:
        if self.lo is not None and not (v > self.lo if self.lo_open else v >= self.lo):
            return False
        if self.hi is not None and not (v < self.hi if self.hi_open else v <= self.hi):
            return False
        return v == v  # nan is in no range

    def __str__(self) -> str:
        def num(x: float) -> str:
            return f"{x:g}" if isinstance(x, float) else str(x)

        if self.lo is not None and self.hi is not None:
            return f"{'(' if self.lo_open else '['}{num(self.lo)}, {num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {num(self.hi)}"
        return "any"


def ranged(default: Any = dataclasses.MISSING, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, hi_open: bool = False, **kw: Any) -> Any:
    """``dataclasses.field`` with an allowed range in its metadata (checked by ``from_dict``)."""
    meta = {**kw.pop("metadata", {}), "range": Range(lo, hi, lo_open, hi_open)}
    return dataclasses.field(default=default, metadata=meta, **kw)


AT_LEAST_1 = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, lo_open=True)
PROBABILITY = Range(0, 1)
DROP_RATE = Range(0, 1, hi_open=True)

# Ranges by field name, for every model config (a field never changes meaning between models).
# Fields where 0 is meaningful (n_mem=0: memoryless; n_vars/n_items=0: filled from the data;
# hop_length/win_length=0: derived) are left out.
MODEL_RANGES: dict[str, Range] = {
    **dict.fromkeys(
        ("d_model", "d_state", "d_hidden", "d_conv", "d_input", "n_layers", "n_heads", "n_blocks", "headdim",
         "ssm_size", "hid_S", "N_S", "N_T", "rnn_layers", "num_groups", "ngroups", "patch_size", "patch_len",
         "image_grid", "recon_grid", "n_unets", "enc_blocks", "fsmn_hidden", "kernel_size", "tbptt_length",
         "action_dim", "vocab", "max_tokens", "sample_rate", "se_reduction", "attn_chunk"),
        AT_LEAST_1),
    **dict.fromkeys(("dropout", "attn_dropout", "head_dropout", "drop", "drop_path"), DROP_RATE),
    **dict.fromkeys(("n_mem", "memory_recon", "kl_weight", "l2_emb"), NON_NEGATIVE),
    "mlp_ratio": POSITIVE,
    "ema_alpha": PROBABILITY,
}
# Ranges by field name, for every dataset config (0 stays allowed where it means "all", "off" or
# "from the data": seq_len, pred_len, max_series, eval_stride, keyframe_steps, ...).
DATA_RANGES: dict[str, Range] = {
    **dict.fromkeys(
        ("batch_size", "eval_batch_size", "n_train", "length", "image_size", "in_frames", "out_frames", "streams",
         "window", "episodes", "maxlen", "n_users", "n_items", "num_digits", "train_size", "n_rows", "n_series",
         "max_tokens", "vocab", "sample_rate", "chunk", "n_objects", "object_size", "stride", "mase_lag"),
        AT_LEAST_1),
    **dict.fromkeys(
        ("n_val", "n_test", "val_size", "test_size", "seq_len", "pred_len", "max_series", "eval_stride",
         "keyframe_steps", "keyframe_horizon", "keyframe_weight", "noise", "proprio_noise", "synthetic_noise",
         "cache_mb", "min_user", "min_item", "val_demo_episodes", "max_episode_steps"),
        NON_NEGATIVE),
    **dict.fromkeys(("val_frac", "test_frac", "val_fraction"), Range(0, 1, hi_open=True)),
    **dict.fromkeys(("anomaly_share", "split"), PROBABILITY),
}
# Ranges by field name, for every domain's eval config (0: "all" / "off" / "the data's").
EVAL_RANGES: dict[str, Range] = {
    **dict.fromkeys(
        ("episodes", "val_episodes", "batch_size", "max_items", "max_samples", "max_steps", "max_users",
         "full_max_users", "n_gifs", "gif_episodes", "n_plots", "n_out", "parallel", "chunk_seconds",
         "ensemble_k", "max_grid_frames"),
        NON_NEGATIVE),
    **dict.fromkeys(("n_negatives", "n_samples"), AT_LEAST_1),
    **dict.fromkeys(("gif_fps", "ssim_data_range"), POSITIVE),
    "anomaly_ratio": Range(0, 100),
}


def _range_of(f: dataclasses.Field, name_ranges: dict[str, Range] | None) -> Range | None:
    r = f.metadata.get("range") if f.metadata else None
    return r if r is not None else (name_ranges or {}).get(f.name)


def check_ranges(obj: Any, where: str = "", name_ranges: dict[str, Range] | None = None) -> None:
    """Raise :class:`ConfigError` for the first numeric field of ``obj`` (nested dataclasses too)
    outside its range (field metadata, else ``name_ranges`` by field name)."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = f"{where}.{f.name}" if where else f.name
        if isinstance(v, Choice):  # its chosen config, under the same key
            check_ranges(v.cfg, key, v.name_ranges)
            continue
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            check_ranges(v, key, name_ranges)
            continue
        r = _range_of(f, name_ranges)
        if r is None:
            continue
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(x, (int, float)) and not isinstance(x, bool) and x not in r:
                shown = ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v
                raise ConfigError(f"{key}={shown}: expected {'each value ' if isinstance(v, (list, tuple)) else ''}{r}")


@dataclasses.dataclass
class Choice:
    """A sub-config chosen by name: ``{name: mamba, d_state: 16}`` -> ``Choice("mamba", MambaConfig(d_state=16))``.

    A config field typed with a subclass (or ``Optional[subclass]``) reads a mapping with a
    ``name`` (a bare string is the name alone) and builds the config class that
    ``options()[name]`` gives from the other keys, checked like any section: an unknown name
    lists the valid names, an unknown key the valid keys. ``host_fields`` are the chosen
    config's fields its host sets (e.g. ``d_model``): refused in the section, left out when
    saved. ``to_dict()`` gives back the flat mapping, so ``config.yaml`` round-trips.
    """

    name: str
    cfg: Any
    host_fields: ClassVar[tuple[str, ...]] = ()
    name_ranges: ClassVar[dict | None] = None
    what: ClassVar[str] = "choice"  # for messages: "unknown <what> 'x'"

    @classmethod
    def options(cls) -> dict[str, type]:
        """{name: config dataclass} of the valid choices; each subclass defines it."""
        raise TypeError(f"{cls.__name__} must define options()")

    @classmethod
    def parse(cls, value: Any, key: str) -> "Choice":
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping with a name, e.g. {{name: ...}}, got {value!r}")
        opts = cls.options()
        value = dict(value)
        name = value.pop("name", None)
        if name is None:
            raise ConfigError(f"config key {key + '.name'!r} is required; valid names: {', '.join(sorted(opts))}")
        if name not in opts:
            raise ConfigError(f"{key}.name={name!r}: unknown {cls.what}; valid names: {', '.join(sorted(opts))}")
        valid = [k for k in field_types(opts[name]) if k not in cls.host_fields]
        for k in value:
            if k in cls.host_fields:
                raise ConfigError(f"config key '{key}.{k}': set by the host model (its own {k}); drop it")
            if k not in valid:
                raise ConfigError(f"unknown config key '{key}.{k}'; valid keys for {name}: name, {', '.join(valid)}")
        return cls(str(name), from_dict(opts[name], value, where=key, name_ranges=cls.name_ranges))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{f.name: to_dict(getattr(self.cfg, f.name))
                                      for f in dataclasses.fields(self.cfg) if f.name not in self.host_fields}}


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def variant(base: type, name: str, **defaults: Any) -> type:
    """A dataclass subclass of config ``base`` named ``name`` that only changes field defaults.

    ``TestMyModelConfig = variant(MyModelConfig, "TestMyModelConfig", d_model=8, n_layers=1)``
    is the class ``@dataclass class TestMyModelConfig(MyModelConfig): d_model: int = 8; ...``:
    the same field types, order, metadata and validators as ``base``. A list, dict or set default
    becomes a ``default_factory`` (a fresh copy per instance). A name that is not a field of
    ``base`` raises :class:`ConfigError` naming it. The class's module is the caller's.
    """
    if not dataclasses.is_dataclass(base):
        raise TypeError(f"variant {name!r}: base {base!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(base)}
    unknown = [k for k in defaults if k not in fields or not fields[k].init]
    if unknown:
        raise ConfigError(f"variant {name!r}: {base.__name__} has no field {unknown[0]!r}; "
                          f"valid fields: {', '.join(k for k, f in fields.items() if f.init)}")
    hints = typing.get_type_hints(base)
    specs = []
    for k, value in defaults.items():
        old = fields[k]
        kw = dict(init=old.init, repr=old.repr, hash=old.hash, compare=old.compare, metadata=old.metadata)
        if isinstance(value, (list, dict, set)):
            kw["default_factory"] = lambda value=value: copy.deepcopy(value)
        else:
            kw["default"] = value
        specs.append((k, hints[k], dataclasses.field(**kw)))
    params = base.__dataclass_params__
    module = sys._getframe(1).f_globals.get("__name__", __name__)
    cls = dataclasses.make_dataclass(name, specs, bases=(base,), namespace={"__module__": module}, eq=params.eq,
                                     order=params.order, frozen=params.frozen, unsafe_hash=params.unsafe_hash)
    cls.__qualname__ = name
    return cls


def from_dict(cls: type, d: dict[str, Any] | None, where: str = "",
              name_ranges: dict[str, Range] | None = None) -> Any:
    """Build dataclass ``cls`` from ``d``, validating keys, types and ranges (see module doc)."""
    d = dict(d or {})
    types_ = field_types(cls)
    unknown = [k for k in d if k not in types_]
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(types_)}")
    kwargs = {k: _coerce(v, types_[k], f"{where}.{k}" if where else k) for k, v in d.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {e}") from None
    return checked(obj, where, name_ranges)


def checked(obj: Any, where: str = "", name_ranges: dict[str, Range] | None = None) -> Any:
    """Check the ranges of ``obj``, then run its ``validate()`` if it has one; return ``obj``."""
    check_ranges(obj, where, name_ranges)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def replace(obj: Any, changes: dict[str, Any], where: str = "", name_ranges: dict[str, Range] | None = None) -> Any:
    """A copy of dataclass ``obj`` with ``changes`` (keys, types and ranges checked like ``from_dict``)."""
    types_ = field_types(type(obj))
    unknown = [k for k in changes if k not in types_]
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(types_)}")
    kwargs = {k: _coerce(v, types_[k], f"{where}.{k}" if where else k) for k, v in changes.items()}
    return checked(dataclasses.replace(obj, **kwargs), where, name_ranges)


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict (tuples become lists so that YAML stays readable), for saving.

    A dataclass with its own ``to_dict()`` method (the run config) is written by it."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        own = getattr(type(obj), "to_dict", None)
        if callable(own):
            return own(obj)
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=5e-4"`` -> (["optim", "lr"], 0.0005). Values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. optim.lr=5e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {text!r}: expected a dotted key such as trainer.max_steps")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply dotted overrides to a nested dict (in place) and return it.

    Keys are checked later, when the dict is turned into dataclasses, so an unknown key
    still gives a one-line error naming it. Choosing another name in a nested choice
    (``model.mixer.name=lru`` where the recipe's mixer is ``mamba``) starts that section afresh:
    the recipe's keys of the old choice are dropped, keys set by the overrides are kept.
    """
    mine: set[tuple[str, ...]] = set()  # paths the overrides set
    for text in overrides:
        path, value = parse_override(text)
        node = d
        for p in path[:-1]:
            nxt = node.get(p)
            if isinstance(nxt, str) and len(path) > 2:  # a bare-name choice (mixer: lru) grows its keys
                nxt = node[p] = {"name": nxt}
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {p!r} is not a section")
            node = nxt
        if len(path) > 2 and path[-1] == "name" and node.get("name") not in (None, value):
            for k in [k for k in node if tuple(path[:-1]) + (k,) not in mine]:
                del node[k]
        node[path[-1]] = value
        mine.add(tuple(path))
    return d


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with the same key twice (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    dup = key in seen
                except TypeError:  # an unhashable key: PyYAML says so itself
                    continue
                if dup:
                    raise _DuplicateKey(key, key_node.start_mark.line)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)




def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        d = yaml.load(text, Loader=UniqueKeyLoader) or {}
    except _DuplicateKey as e:
        raise ConfigError(f"{p} line {e.line + 1}: duplicate key {e.key!r} (each key may appear once per section)") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"{p}{where}: not valid YAML") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    return d


def save_yaml(d: dict[str, Any], path: str | Path) -> None:
    from .io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(d), sort_keys=False))
