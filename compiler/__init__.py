"""The AMML language: text → checked program → workflow and callback bytecode.

    >>> from compiler import compile_source
    >>> program = compile_source("normalsource col='val1', mean=0, std=1 | filter cond=val1 > 1 | print")
    >>> [n.component for n in build_graph(program.pipelines[0]).nodes]
    ['normalsource', 'filter', 'print']

Imports nothing from Airflow, TensorFlow or the runtime, and not numpy either: it runs at DAG-parse time.
The record VM (``compiler.vm``) is the reference meaning of callback bytecode; the vectorised VM that runs
it over numpy columns belongs to the runtime (``airflow_amml.runtime.batch_vm``).
"""

from __future__ import annotations

import os

from .bytecode import Code, PipelineCode, Program, disassemble
from .cache import ProgramCache, cache_key
from .components import ComponentRegistry, ComponentSpec, Kind, ParamType, default_registry, param
from .errors import AmmlCompileErrors, AmmlError, AmmlLimitError, SourceError
from .workflow import Graph, build_graph

__all__ = [
    "AmmlCompileErrors",
    "AmmlError",
    "Code",
    "ComponentRegistry",
    "ComponentSpec",
    "Graph",
    "Kind",
    "ParamType",
    "PipelineCode",
    "Program",
    "ProgramCache",
    "SourceError",
    "build_graph",
    "compile_file",
    "compile_source",
    "default_registry",
    "disassemble",
    "param",
    "parse_source",
]

_default_cache = ProgramCache()


def parse_source(text: str, filename: str = "<string>"):  # noqa: ANN201 - returns compiler.ast.Module
    """Parse only (the AST, for `amml compile --emit ast`)."""
    from .parser import parse

    return parse(text, filename)


def compile_source(
    text: str,
    filename: str = "<string>",
    *,
    registry: ComponentRegistry | None = None,
    cache: ProgramCache | None = None,
) -> Program:
    """Compile AMML source text; raise a :class:`SourceError` (with file:line:column) if it is wrong."""
    # A byte-order mark (parser.BOM) is not text: drop it before the cache key and the error context, so
    # columns count from the first character after it. (The parser, imported below, is not needed on a hit.)
    text = text.removeprefix("\ufeff")
    registry = registry or default_registry()
    cache = cache if cache is not None else _default_cache
    key = cache_key(text, filename, registry.fingerprint())
    program = cache.get(key)
    if program is not None:
        return program
    from .checker import Checker
    from .parser import parse

    module = parse(text, filename)
    try:
        program = Checker(module, registry, text).check()
    except RecursionError:  # the parser's depth limits should make this unreachable; never show a traceback
        raise AmmlLimitError(
            "the file is nested too deeply to compile", filename=filename, source=text,
            hint="split long expressions and flow chains into several parameters, components or pipelines",
        ) from None
    cache.put(key, program)
    return program


def compile_file(
    path: str | os.PathLike[str],
    *,
    registry: ComponentRegistry | None = None,
    cache: ProgramCache | None = None,
) -> Program:
    """Compile an .amml file (read as UTF-8)."""
    from .errors import read_text

    return compile_source(read_text(path), str(path), registry=registry, cache=cache)
