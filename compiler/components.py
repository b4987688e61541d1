"""What the compiler knows about components: their kind and the parameters they declare.

The runtime classes live in ``airflow_amml.components``; the compiler only needs these declarations, so it
stays free of pandas/TensorFlow imports. Third-party components register a :class:`ComponentSpec` (or a
class with a ``spec`` attribute) under the entry point group ``amml.components``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "amml.components"


class Kind(str, Enum):
    INGRESS = "ingress"
    PROGRESS = "progress"
    EGRESS = "egress"


class ParamType(str, Enum):
    """Types a parameter can declare. ``EXPR`` and ``COND`` are evaluated per record; the rest once."""

    INT = "int"
    FLOAT = "float"
    STR = "str"
    BOOL = "bool"
    STR_LIST = "list[str]"
    FLOAT_LIST = "list[float]"
    ANY = "any"  # any constant (including lists and dicts)
    EXPR = "expr"  # a per-record expression; its value is a column
    COND = "cond"  # a per-record condition; null counts as false

    @property
    def per_record(self) -> bool:
        return self in (ParamType.EXPR, ParamType.COND)


class _Required:
    """Marks a parameter without a default. A fixed repr: it is part of the registry's fingerprint, which
    keys the compiled-program cache and so must be the same in every process."""

    def __repr__(self) -> str:
        return "<required>"


_REQUIRED = _Required()


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: ParamType
    doc: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()
    # a constant value's further check: None when fine, else (problem, hint); see compiler/value_checks.py
    check: Callable[[Any], tuple[str, str] | None] | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED


def param(
    name: str,
    type: ParamType | str,
    doc: str,
    default: Any = _REQUIRED,
    choices: Iterable[str] = (),
    check: Callable[[Any], tuple[str, str] | None] | None = None,
) -> ParamSpec:
    """Declare a parameter: ``param("epoch", "int", "number of epochs", default=20)``."""
    return ParamSpec(name, ParamType(type), doc, default, tuple(choices), check)


@dataclass(frozen=True)
class ComponentSpec:
    """A component as the compiler sees it.

    ``extra`` gives the type of parameters not declared in ``params`` (e.g. ``derive`` takes any
    ``new_column=expression``); None means undeclared parameters are an error.
    ``impl`` is the ``module:Class`` path of the runtime implementation, imported only when run.
    """

    name: str
    kind: Kind
    doc: str
    params: tuple[ParamSpec, ...] = ()
    impl: str = ""
    extra: ParamType | None = None
    extra_doc: str = ""
    emits_events: tuple[str, ...] = ()
    accepts_events: tuple[str, ...] = ()
    _by_name: dict[str, ParamSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})

    def param(self, name: str) -> ParamSpec | None:
        found = self._by_name.get(name)
        if found is None and self.extra is not None:
            return ParamSpec(name, self.extra, self.extra_doc)
        return found


class ComponentRegistry(Mapping[str, ComponentSpec]):
    """Name → spec. Built-ins first; entry points are loaded on first lookup of an unknown name."""

    def __init__(self, specs: Iterable[ComponentSpec] = (), *, load_entry_points: bool = True) -> None:
        self._specs: dict[str, ComponentSpec] = {}
        self._fingerprint: str | None = None
        for spec in specs:
            self.register(spec)
        self._entry_points_pending = load_entry_points

    def register(self, spec: ComponentSpec) -> None:
        if spec.name in self._specs and self._specs[spec.name] != spec:
            raise ValueError(f"component `{spec.name}` is registered twice")
        self._specs[spec.name] = spec
        self._fingerprint = None

    def __getitem__(self, name: str) -> ComponentSpec:
        if name not in self._specs:
            self._load_entry_points()
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        if name not in self._specs:
            self._load_entry_points()
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        self._load_entry_points()
        return iter(self._specs)

    def __len__(self) -> int:
        self._load_entry_points()
        return len(self._specs)

    def fingerprint(self) -> str:
        """Changes when any declaration changes: part of the compiled-program cache key."""
        if self._fingerprint is None:
            import hashlib

            text = repr(sorted((s.name, s.kind.value, s.params, s.extra, s.impl) for s in self._specs.values()))
            self._fingerprint = hashlib.sha1(text.encode()).hexdigest()[:16]
        return self._fingerprint

    def _load_entry_points(self) -> None:
        if not self._entry_points_pending:
            return
        self._entry_points_pending = False
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                spec = obj if isinstance(obj, ComponentSpec) else obj.spec
                if not spec.impl and not isinstance(obj, ComponentSpec):
                    spec = _with_impl(spec, f"{obj.__module__}:{obj.__qualname__}")
                self.register(spec)
            except Exception as exc:  # a broken plugin must not break every other pipeline
                warnings.warn(f"cannot load AMML component entry point {ep.name!r}: {exc}", stacklevel=2)


def _with_impl(spec: ComponentSpec, impl: str) -> ComponentSpec:
    return ComponentSpec(
        spec.name,
        spec.kind,
        spec.doc,
        spec.params,
        impl,
        spec.extra,
        spec.extra_doc,
        spec.emits_events,
        spec.accepts_events,
    )


_default: ComponentRegistry | None = None


def default_registry() -> ComponentRegistry:
    global _default
    if _default is None:
        from .builtin_components import BUILTIN_COMPONENTS

        _default = ComponentRegistry(BUILTIN_COMPONENTS)
    return _default
