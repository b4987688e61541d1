"""URI scheme → artifact store, mlflow-style: the built-in stores registered in code, then whatever installed
packages declare in the entry point group ``amml.artifact_stores`` (``s3 = my_package.stores:S3Store``).

    artifact_store_for("/srv/amml/models")              LocalArtifactStore (a plain folder)
    artifact_store_for("file:///srv/amml/models")       LocalArtifactStore
    artifact_store_for("webhdfs://namenode:9870/amml")  HdfsArtifactStore (also http, https, hdfs)

An entry point names an `ArtifactStore` subclass (its `from_uri` opens the store) or any callable taking the
location URI and returning a store. A package whose entry point cannot be loaded is skipped with a warning:
one broken plugin must not stop every registry. An entry point may replace a built-in scheme.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from urllib.parse import urlparse

from .artifact_store import ArtifactStore
from .errors import ArtifactError, RegistryError
from .hdfs_artifact_store import HdfsArtifactStore
from .local_artifact_store import LocalArtifactStore

ENTRY_POINT_GROUP = "amml.artifact_stores"
LOCATION_HINT = "use a folder, file:///folder or webhdfs://namenode:9870/amml/models"

StoreFactory = Callable[[str], ArtifactStore]


class ArtifactStoreRegistry:
    """Scheme → store factory. Entry points are read once, on the first lookup, on top of what was registered."""

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self._factories: dict[str, StoreFactory] = {}
        self._entry_points_pending = load_entry_points

    def register(self, scheme: str, store: type[ArtifactStore] | StoreFactory) -> None:
        """Open locations `scheme://...` with `store` (`""`: a plain folder path, no scheme)."""
        if isinstance(store, type) and issubclass(store, ArtifactStore):
            if store.from_uri.__func__ is ArtifactStore.from_uri.__func__:
                raise TypeError(f"cannot register {store.__name__} for `{scheme}`: it does not implement from_uri()")
            store = store.from_uri
        elif not callable(store):
            raise TypeError(f"an artifact store for `{scheme}` must be an ArtifactStore class or a callable")
        self._factories[scheme.lower()] = store

    def register_entrypoints(self) -> None:
        """Register every `amml.artifact_stores` entry point; warn about, and skip, the ones that fail."""
        self._entry_points_pending = False
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                self.register(ep.name, ep.load())
            except Exception as exc:  # ImportError, AttributeError, TypeError from register(), ...
                warnings.warn(
                    f"cannot load AMML artifact store entry point {ep.name!r} ({ep.value}): {exc}", stacklevel=2
                )

    def schemes(self) -> list[str]:
        self._load_entry_points()
        return sorted(s for s in self._factories if s)

    def get_store(self, location: str) -> ArtifactStore:
        """The store rooted at `location`, by its scheme; an unknown scheme's error lists the registered ones."""
        scheme = _scheme(location)
        self._load_entry_points()
        factory = self._factories.get(scheme)
        if factory is None:
            raise ArtifactError(
                f"unknown artifact location {location!r}: no artifact store is registered for `{scheme}://`; "
                f"registered schemes: {', '.join(self.schemes()) or '(none)'}, and plain folders",
                hint=f"{LOCATION_HINT}, or install a package that declares an `{ENTRY_POINT_GROUP}` entry point "
                f"for `{scheme}`",
            )
        try:
            store = factory(location)
        except RegistryError:
            raise
        except Exception as exc:  # a third party's bug: still a registry error (the API answers 503, not 500)
            raise ArtifactError(f"the artifact store for `{scheme}` cannot open {location!r}: {exc}") from exc
        if not isinstance(store, ArtifactStore):
            raise ArtifactError(f"the artifact store for `{scheme}` returned {type(store).__name__}, not a store")
        return store

    def _load_entry_points(self) -> None:
        if self._entry_points_pending:
            self.register_entrypoints()


def _scheme(location: str) -> str:
    try:
        parsed = urlparse(location)
        parsed.port  # noqa: B018 -- parsing the port is what finds `host:notaport`
    except (ValueError, TypeError, AttributeError) as exc:  # a port that is not a number, a malformed IPv6 host
        raise ArtifactError(f"artifact location {location!r} is not a valid URL: {exc}", hint=LOCATION_HINT) from exc
    return parsed.scheme


def builtin_registry(*, load_entry_points: bool = True) -> ArtifactStoreRegistry:
    """A registry that knows the stores shipped here (what works before any entry point is installed)."""
    registry = ArtifactStoreRegistry(load_entry_points=load_entry_points)
    for scheme in ("", "file"):
        registry.register(scheme, LocalArtifactStore)
    for scheme in ("webhdfs", "http", "https", "hdfs"):
        registry.register(scheme, HdfsArtifactStore)
    return registry


_registry = builtin_registry()


def artifact_store_for(location: str) -> ArtifactStore:
    """The store rooted at `location` (a folder or a URI), from the process-wide scheme registry."""
    return _registry.get_store(location)


def register_artifact_store(scheme: str, store: type[ArtifactStore] | StoreFactory) -> None:
    """Register a store in the process-wide registry (an entry point does this without code)."""
    _registry.register(scheme, store)
