"""The component registry: every name the compiler can look up, built-ins first, then entry points.

Declarations themselves (:class:`ComponentSpec` and its parts) are in :mod:`.component_spec`, and the
built-in ones in :mod:`.builtin_components`; this module only collects them. Third-party components register
a :class:`ComponentSpec` (or a class with a ``spec`` attribute) under the entry point group ``amml.components``.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Iterable, Iterator, Mapping

from .builtin_components import BUILTIN_COMPONENTS
from .component_spec import ComponentSpec, Kind, ParamSpec, ParamType, param

# the declaration types, for the callers that import them from here with the registry
__all__ = ["ComponentRegistry", "ComponentSpec", "Kind", "ParamSpec", "ParamType", "default_registry", "param"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "amml.components"


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
    return dataclasses.replace(spec, impl=impl)


_default: ComponentRegistry | None = None


def default_registry() -> ComponentRegistry:
    global _default
    if _default is None:
        _default = ComponentRegistry(BUILTIN_COMPONENTS)
    return _default
