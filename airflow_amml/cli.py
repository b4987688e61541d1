"""`amml`: the command line.

    amml lint PATH...                      check .amml files (and folders of them); exit 1 on any error
    amml compile FILE --emit bytecode|ast|graph|json [--format text|mermaid|dot] [--pipeline NAME]
    amml components [NAME]                 the components the compiler knows, with their parameters
    amml run FILE [--pipeline NAME] [--mode multiprocess|single] [--param KEY=VALUE]
    amml model list|show|register|alias|gc  the model registry

No Airflow, database or HDFS is needed for any of these.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from compiler import AmmlCompileErrors, AmmlError, build_graph, compile_file, default_registry, disassemble
from compiler.settings import runtime_settings


def _amml_files(paths: Sequence[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.amml") if p.is_file())
        else:
            yield path


def cmd_lint(args: argparse.Namespace) -> int:
    files = list(_amml_files(args.paths))
    model_files = _model_files(args.paths, files)
    if not files and not model_files:
        print(f"amml lint: no .amml or model files in {' '.join(args.paths)}", file=sys.stderr)
        return 1
    failed = errors = 0
    definitions: set[str] = set()
    for path in model_files:
        from airflow_amml.models.spec import load_model_spec

        try:
            definitions.add(load_model_spec(path).ref)
        except AmmlError as exc:
            failed, errors = failed + 1, errors + _count(exc)
            print(exc, end="\n\n", file=sys.stderr)
    for path in files:
        try:
            program = compile_file(path)
            problems = _undefined_models(program, definitions)
        except AmmlError as exc:
            problems = [exc]
        if problems:
            failed += 1
            errors += sum(_count(p) for p in problems)
            for problem in problems:
                print(problem, end="\n\n", file=sys.stderr)
    total = len(files) + len(model_files)
    summary = f"{total} file(s) checked: {total - failed} ok, {failed} with errors ({errors} error(s))"
    print(summary, file=sys.stderr if failed else sys.stdout)
    return 1 if failed else 0


def _count(exc: AmmlError) -> int:
    return len(exc.errors) if isinstance(exc, AmmlCompileErrors) else 1


def _model_files(paths: Sequence[str], amml_files: list[Path]) -> list[Path]:
    """Model definitions to check: YAML model files in the given folders, and next to the given .amml files."""
    from airflow_amml.models.spec import find_model_files

    folders = {Path(p) for p in paths if Path(p).is_dir()} | {f.parent / "models" for f in amml_files}
    found: dict[Path, None] = {}
    for folder in sorted(folders):
        for path in find_model_files(folder):
            found[path.resolve()] = None
    return list(found)


def _undefined_models(program: object, definitions: set[str]) -> list[AmmlError]:
    """`train_lstm model="name:version"` must name a definition among the checked model files."""
    from compiler.errors import AmmlNameError, did_you_mean, one_of

    params = (program.dag or {}).get("params", {})
    problems: list[AmmlError] = []
    for pipeline in program.pipelines:
        for node in build_graph(pipeline).nodes:
            if node.component != "train_lstm" or node.callback is None:
                continue
            ref = node.callback.static_values.get("model")
            if ref is None and "model" in node.callback.params:  # model=params.NAME: check the default
                ref = params.get(node.callback.params[node.callback.params.index("model")])
            if isinstance(ref, str) and ref not in definitions:
                problems.append(
                    AmmlNameError(
                        f"`train_lstm` uses the model definition {ref!r}, which no model file defines; "
                        f"defined: {one_of(definitions)}",
                        filename=program.filename,
                        line=node.line,
                        column=node.column,
                        source=program.source,
                        hint=did_you_mean(ref, definitions) or "add a model YAML under models/ next to this file",
                    )
                )
    return problems


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
        folder = Path(args.file).resolve().parent
        settings = {
            "model_paths": [str(folder / "models"), str(folder)],
            "lineage": {"source_hash": program.source_hash},
            **runtime_settings(program.dag),
        }
        if args.batch_rows is not None:
            settings["batch_rows"] = args.batch_rows
        if args.flush_delay is not None:
            settings["flush_delay"] = args.flush_delay
        for pipeline in pipelines:
            result = run_pipeline(
                pipeline,
                run_params={**defaults, **run_params},
                settings=settings,
                mode=args.mode,
                filename=str(args.file),
            )
            del result  # the executor logs the per-component summary
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


def _registry():
    from airflow_amml.registry import ModelRegistry

    return ModelRegistry.from_settings()


def cmd_model(args: argparse.Namespace) -> int:
    from airflow_amml.registry import RegistryError

    try:
        return MODEL_COMMANDS[args.model_command](args)
    except (RegistryError, AmmlError) as exc:
        print(exc, file=sys.stderr)
        return 1


def _model_list(args: argparse.Namespace) -> int:
    registry = _registry()
    versions = registry.list_versions(args.name)
    if not versions and not args.name:
        for name, version, digest in registry.list_definitions():
            print(f"definition {name}:{version}  sha256 {digest[:12]}")
    for v in versions:
        aliases = " ".join("@" + a for a in v.aliases)
        metrics = " ".join(f"{k}={val:.4g}" if isinstance(val, float) else f"{k}={val}" for k, val in v.metrics.items())
        print(f"{v.ref:<20} {v.definition:<14} {v.created_at:%Y-%m-%d %H:%M}  {aliases:<14} {metrics}")
    return 0


def _model_show(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    entry = _registry().resolve(args.ref)
    data = dataclasses.asdict(entry)
    data["created_at"] = entry.created_at.isoformat()
    print(json.dumps(data, indent=2, default=str))
    return 0


def _model_register(args: argparse.Namespace) -> int:
    registry = _registry()
    if args.file.endswith((".yaml", ".yml")):
        from airflow_amml.models.spec import load_model_spec

        spec = load_model_spec(args.file)
        print(f"registered definition {registry.register_definition(spec.name, spec.version, spec.source)}")
        return 0
    if not args.definition:
        print("amml model register MODEL_FILE needs --definition NAME:VERSION", file=sys.stderr)
        return 1
    name = args.name or args.definition.partition(":")[0]
    entry = registry.register_version(name, args.definition, Path(args.file))
    print(f"registered {entry.ref} ({entry.artifact_uri})")
    return 0


def _model_alias(args: argparse.Namespace) -> int:
    name, _, number = args.version.rpartition("/")
    if not number.isdigit() or not name:
        print(f"expected NAME/VERSION such as ett/3, got {args.version!r}", file=sys.stderr)
        return 1
    _registry().set_alias(name, args.alias, int(number))
    print(f"{name}@{args.alias} → {name}/{number}")
    return 0


def _model_gc(args: argparse.Namespace) -> int:
    removed = _registry().gc(grace_seconds=args.grace, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for uri in removed:
        print(f"{verb} {uri}")
    print(f"{verb} {len(removed)} orphaned artifact(s)")
    return 0


MODEL_COMMANDS = {
    "list": _model_list,
    "show": _model_show,
    "register": _model_register,
    "alias": _model_alias,
    "gc": _model_gc,
}


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
    run.add_argument("--batch-rows", type=int, help="records per micro-batch (default: the dag block's, else 65536)")
    run.add_argument(
        "--flush-delay", type=float, help="seconds an ingress may hold records (default: the dag block's, else 0.05)"
    )
    run.set_defaults(func=cmd_run)

    model = sub.add_parser("model", help="the model registry: list, show, register, alias, gc")
    msub = model.add_subparsers(dest="model_command", required=True)
    mlist = msub.add_parser("list", help="registered versions (and definitions)")
    mlist.add_argument("name", nargs="?")
    mshow = msub.add_parser("show", help="one version: `ett`, `ett@champion` or `ett/3`")
    mshow.add_argument("ref")
    mreg = msub.add_parser("register", help="a model definition (.yaml) or a trained model file")
    mreg.add_argument("file")
    mreg.add_argument("--definition", help="NAME:VERSION of the definition a trained file was built from")
    mreg.add_argument("--name", help="model name (default: the definition's)")
    malias = msub.add_parser("alias", help="point an alias at a version: amml model alias champion ett/3")
    malias.add_argument("alias")
    malias.add_argument("version")
    mgc = msub.add_parser("gc", help="remove artifacts that no version points at")
    mgc.add_argument("--grace", type=float, default=3600.0, help="only files older than this many seconds")
    mgc.add_argument("--dry-run", action="store_true")
    model.set_defaults(func=cmd_model)

    comps = sub.add_parser("components", help="list components and their parameters")
    comps.add_argument("name", nargs="?")
    comps.set_defaults(func=cmd_components)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
