"""`amml`: the command line.

    amml lint PATH...                      check .amml files (and folders of them); exit 1 on any error
    amml compile FILE --emit bytecode|ast|graph|json [--format text|mermaid|dot] [--pipeline NAME]
    amml components [NAME]                 the components the compiler knows, with their parameters
    amml run FILE [--pipeline NAME] [--mode multiprocess|single] [--param KEY=VALUE]

No Airflow, database or HDFS is needed for any of these.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from compiler import AmmlCompileErrors, AmmlError, build_graph, compile_file, default_registry, disassemble


def _amml_files(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.amml") if p.is_file())
        else:
            yield path


def cmd_lint(args: argparse.Namespace) -> int:
    files = list(_amml_files(args.paths))
    if not files:
        print(f"amml lint: no .amml files in {' '.join(args.paths)}", file=sys.stderr)
        return 1
    failed = errors = 0
    for path in files:
        try:
            compile_file(path)
        except AmmlError as exc:
            failed += 1
            errors += len(exc.errors) if isinstance(exc, AmmlCompileErrors) else 1
            print(exc, end="\n\n", file=sys.stderr)
    ok = len(files) - failed
    summary = f"{len(files)} file(s) checked: {ok} ok, {failed} with errors ({errors} error(s))"
    print(summary, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


def cmd_compile(args: argparse.Namespace) -> int:
    try:
        if args.emit == "ast":
            from compiler import parse_source

            text = Path(args.file).read_text(encoding="utf-8")
            for item in parse_source(text, args.file).items:
                print(item)
            return 0
        program = compile_file(args.file)
    except AmmlError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror}", file=sys.stderr)
        return 1
    pipelines = [program.pipeline(args.pipeline)] if args.pipeline else list(program.pipelines)
    if args.emit == "bytecode":
        from compiler.bytecode import disassemble_pipeline

        print("\n\n".join(disassemble_pipeline(p) for p in pipelines) if args.pipeline else disassemble(program))
    elif args.emit == "json":
        print(program.to_json())
    else:
        from compiler.workflow import RENDERERS

        print("\n\n".join(RENDERERS[args.format](build_graph(p)) for p in pipelines))
    return 0


def cmd_components(args: argparse.Namespace) -> int:
    registry = default_registry()
    names = [args.name] if args.name else sorted(registry)
    for name in names:
        if name not in registry:
            from compiler.errors import did_you_mean

            print(f"unknown component `{name}`; {did_you_mean(name, registry) or ''}", file=sys.stderr)
            return 1
        spec = registry[name]
        print(f"{spec.name} ({spec.kind.value}): {spec.doc}")
        for p in spec.params:
            default = "required" if p.required else f"default {p.default!r}"
            choices = f", one of {', '.join(p.choices)}" if p.choices else ""
            print(f"    {p.name}: {p.type.value} ({default}{choices}) — {p.doc}")
        if spec.extra is not None:
            print(f"    <any name>: {spec.extra.value} — {spec.extra_doc}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import logging

    from airflow_amml.runtime.executor import run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    run_params = {}
    for item in args.param or ():
        key, _, raw = item.partition("=")
        run_params[key] = _parse_param(raw)
    try:
        program = compile_file(args.file)
        defaults = dict((program.dag or {}).get("params", {}))
        pipelines = [program.pipeline(args.pipeline)] if args.pipeline else list(program.pipelines)
        for pipeline in pipelines:
            result = run_pipeline(
                pipeline, run_params={**defaults, **run_params}, mode=args.mode, filename=str(args.file)
            )
            print(result.summary(), file=sys.stderr)
    except AmmlError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _parse_param(raw: str) -> object:
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return raw


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amml", description="AMML workflow language tools")
    sub = parser.add_subparsers(dest="command", required=True)

    lint = sub.add_parser("lint", help="check .amml files; exit 1 on any error")
    lint.add_argument("paths", nargs="+", help=".amml files or folders")
    lint.set_defaults(func=cmd_lint)

    comp = sub.add_parser("compile", help="compile one file and show the result")
    comp.add_argument("file")
    comp.add_argument("--emit", choices=("bytecode", "ast", "graph", "json"), default="bytecode")
    comp.add_argument("--format", choices=("text", "mermaid", "dot"), default="text", help="graph format")
    comp.add_argument("--pipeline", help="only this pipeline")
    comp.set_defaults(func=cmd_compile)

    run = sub.add_parser("run", help="run a file's pipelines on embedded defaults")
    run.add_argument("file")
    run.add_argument("--pipeline", help="only this pipeline")
    run.add_argument("--mode", choices=("multiprocess", "single"), default="multiprocess")
    run.add_argument("--param", action="append", metavar="KEY=VALUE", help="run parameter (JSON value or text)")
    run.set_defaults(func=cmd_run)

    comps = sub.add_parser("components", help="list components and their parameters")
    comps.add_argument("name", nargs="?")
    comps.set_defaults(func=cmd_components)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
