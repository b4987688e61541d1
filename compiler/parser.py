"""Text → AST: the lark LALR parser, a tree-to-AST transformer, and syntax errors a person can act on.

The parser also enforces the size limits of a file (``MAX_SOURCE_BYTES``, ``MAX_NESTING`` brackets,
``MAX_DEPTH`` levels of an expression, ``MAX_ITEMS`` per list): they are checked with loops, so that every
later pass, which recurses over the tree, stays far from Python's recursion limit. A leading byte-order
mark is dropped.
"""

from __future__ import annotations

import ast as py_ast
import functools
import re
from collections.abc import Iterator
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast
from .errors import AmmlLimitError, AmmlSyntaxError

# Limits on what one file may hold. Nothing hand-written comes near them; they keep the recursive later
# passes (folding, code generation, the AST printer) far from Python's recursion limit and the work per
# file bounded.
MAX_NESTING = 64  # brackets ( [ { inside one another
MAX_DEPTH = 100  # levels of an expression tree: each operator, call, `not`, unary sign or list is one
MAX_ITEMS = 4096  # elements of a list, entries of a mapping, arguments of a call, names after join/split/after
MAX_SOURCE_BYTES = 1_000_000
BOM = "\ufeff"  # a UTF-8 byte-order mark some editors write; it is not part of the text

KEYWORDS = frozenset({"pipeline", "dag", "after", "join", "split", "and", "or", "not", "true", "false", "null",
                      "for"})

_TERMINAL_NAMES = {
    "NAME": "a name",
    "QUOTED_NAME": "a `quoted name`",
    "INT": "a number",
    "FLOAT": "a number",
    "STRING": "a string",
    "COMP_OP": "a comparison",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/' or '%'",
    "_PIPE": "'|'",
    "_NL": "a new line",
    "PARAMS": "`params`",
    "$END": "the end of the file",
}


@functools.cache
def _parser() -> Lark:
    return Lark.open(
        "grammar.lark",
        rel_to=__file__,
        parser="lalr",
        postlex=_MappingLines(),
        maybe_placeholders=True,
        transformer=_ToAst(),
        cache=True,  # lark keeps the parse tables in the temp dir, keyed by grammar hash: 100 ms → 10 ms
    )


class _MappingLines:
    """Lark post-lexer: a mapping literal (`{...}` in an expression) may span lines, so the line breaks inside
    it are dropped (a long `param_descriptions = {...}` reads best one entry a line). A brace opens a block
    when it follows a name (`pipeline p {`, `dag d {`, `after a, b {`) or `dag`; anywhere else it opens a
    mapping (after `=`, `:`, `,`, `(`, `[`) — except the first brace after `pipeline`, which always opens the
    block (`pipeline p for s in catalog("x") {`)."""

    always_accept = ("_NL",)  # lexed in every parser state, so that this class sees the breaks inside mappings

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        mappings: list[bool] = []  # per open brace: does it open a mapping (else a block)?
        previous = None
        in_header = False  # between `pipeline` and the brace of its block
        for token in stream:
            kind = token.type
            if kind == "PIPELINE":
                in_header = True
            if kind == "LBRACE":
                mappings.append(previous not in ("NAME", "DAG") and not in_header)
                in_header = False
            elif kind == "RBRACE" and mappings:
                mappings.pop()
            elif kind == "_NL" and mappings and mappings[-1]:
                continue
            previous = kind
            yield token


def parse(text: str, filename: str = "<string>") -> ast.Module:
    """Parse AMML source into a :class:`~compiler.ast.Module`; raise :class:`AmmlSyntaxError`."""
    text = text.removeprefix(BOM)
    try:
        _check_limits(text)
        items = _parser().parse(text + "\n")
        _check_depth(items)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text).located(filename, text) from None
    except (AmmlSyntaxError, AmmlLimitError) as exc:
        raise exc.located(filename, text) from None
    return ast.Module(filename=filename, items=tuple(items))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_limits(text: str) -> None:
    if len(text) > MAX_SOURCE_BYTES:
        raise AmmlLimitError(
            f"file is {len(text)} characters long; AMML files are limited to {MAX_SOURCE_BYTES}",
            line=1,
            column=1,
            hint="split the workflow into several files",
        )
    surrogate = _SURROGATE.search(text)
    if surrogate:  # such a str is not text: it cannot be hashed, written or shown as UTF-8
        start = surrogate.start()
        raise AmmlSyntaxError(
            f"the text holds a lone surrogate {ascii(surrogate.group())[1:-1]}, which is not a character",
            line=text.count("\n", 0, start) + 1,
            column=start - text.rfind("\n", 0, start),
            hint="read the file as UTF-8 without errors='surrogateescape'",
        )
    _check_brackets(text)


# Strings, quoted names and comments (exactly as the grammar's terminals, but a string may be unterminated:
# the parser reports that) are skipped whole, so that a bracket inside them does not count.
_BRACKET_SCAN = re.compile(r"""#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|`[^`\n]*`?|[(\[{)\]}\n]""")


_OPENING, _CLOSING = frozenset("([{"), frozenset(")]}")


def _check_brackets(text: str) -> None:
    depth = 0
    line, line_start = 1, 0
    for match in _BRACKET_SCAN.finditer(text):
        token = match.group()
        if token == "\n":
            line, line_start = line + 1, match.end()
        elif token in _OPENING:
            depth += 1
            if depth > MAX_NESTING:
                raise AmmlLimitError(
                    f"brackets nested more than {MAX_NESTING} deep",
                    line=line,
                    column=match.start() - line_start + 1,
                    hint="simplify the expression, or compute parts of it in an earlier `derive`",
                )
        elif token in _CLOSING:
            depth = max(0, depth - 1)


def _check_depth(items: list) -> None:
    """Refuse expression trees deeper than MAX_DEPTH (long operator chains, `not not ...`, `- - ...`),
    at the first node beyond the limit. A loop, not recursion: this is what protects the recursive passes."""
    stack = [(expr, 1) for expr in _expressions(items)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AmmlLimitError(
                f"expression nested more than {MAX_DEPTH} levels deep (each operator, call, `not` or sign is "
                "a level)",
                line=node.pos.line,
                column=node.pos.column,
                hint="split it: compute parts in an earlier `derive` (e.g. derive part=...) and combine those",
            )
        stack.extend((child, depth + 1) for child in ast.children(node))


def _expressions(items: list) -> list[ast.Expr]:
    """Every parameter and setting value in the parsed items."""
    exprs: list[ast.Expr] = []
    statements: list[ast.Statement] = []
    for item in items:
        if isinstance(item, ast.DagBlock):
            exprs.extend(s.value for s in item.settings)
        elif isinstance(item, ast.PipelineBlock):
            statements.extend(item.statements)
        else:
            statements.append(item)
    for stmt in statements:
        for stage in (stmt.pipe.head, *stmt.pipe.steps):
            if isinstance(stage, ast.Step):
                exprs.extend(p.value for p in stage.params)
    return exprs


# ---- syntax errors -------------------------------------------------------------------------------


def _syntax_error(exc: UnexpectedInput, text: str) -> AmmlSyntaxError:
    line, column = exc.line, exc.column
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(exc, text)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        expected = getattr(exc, "expected", None) or getattr(exc, "accepts", None) or set()
        return AmmlSyntaxError(
            f"the file ends in the middle of a statement; expected {_describe(expected)}",
            line=_last_line(text),
            column=len(text.rstrip("\n").splitlines()[-1]) + 1 if text.strip() else 1,
            hint=_eof_hint(text),
        )
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    expected = exc.accepts or exc.expected
    if token.type in ("_NL", "_PIPE") and line is not None:
        # lark reports a newline token at the start of the newline; point at the end of the line instead.
        line = token.line
        column = token.column
    hint = _hint_for(token, expected)
    shown = "a new line" if token.type == "_NL" else f"`{_token_text(token)}`"
    return AmmlSyntaxError(
        f"unexpected {shown}; expected {_describe(expected)}",
        line=line,
        column=column,
        hint=hint,
    )


def _bad_character(exc: UnexpectedCharacters, text: str) -> AmmlSyntaxError:
    char = exc.char
    if char in "\"'":
        return AmmlSyntaxError(
            "unterminated string",
            line=exc.line,
            column=exc.column,
            hint=f"close the string with {char} on the same line",
        )
    if char == "=":
        return AmmlSyntaxError(
            "unexpected `=`",
            line=exc.line,
            column=exc.column,
            hint="use `==` to compare values; `=` only assigns a parameter or names a flow",
        )
    if char == "`":
        return AmmlSyntaxError(
            "unterminated `quoted name`", line=exc.line, column=exc.column, hint="close it with ` on the same line"
        )
    if char == "&" or char == "!":
        return AmmlSyntaxError(
            f"unexpected character {char!r}",
            line=exc.line,
            column=exc.column,
            hint="use `and`, `or`, `not` for boolean logic and `!=` for 'not equal'",
        )
    return AmmlSyntaxError(
        f"unexpected character {char!r}",
        line=exc.line,
        column=exc.column,
        hint=f"expected {_describe(exc.allowed or set())}",
    )


def _hint_for(token: Token, expected: set[str]) -> str | None:
    if token.type == "EQUAL" or (token.type == "__ANON" and token.value == "="):
        return "use `==` to compare values; `=` only assigns a parameter or names a flow"
    if token.value == "=":
        return "use `==` to compare values; `=` only assigns a parameter or names a flow"
    if token.type in ("NAME", "QUOTED_NAME") and "COMMA" in expected:
        return "separate parameters with `,`: e.g. `normalsource col='val1', mean=0, std=1`"
    if token.type == "NAME" and token.value in KEYWORDS:
        return f"`{token.value}` is a keyword; quote a field of that name with backticks: `{token.value}`"
    if token.type == "_PIPE":
        return "each `|` must sit between two components"
    if token.type == "_NL" and "EQUAL" in expected:
        return "a parameter needs a value: `key=value`"
    return None


def _eof_hint(text: str) -> str | None:
    stripped = text.rstrip()
    if stripped.endswith("|"):
        return "a `|` must be followed by a component, e.g. `| print`"
    if stripped.endswith(","):
        return "remove the trailing `,` or add the next parameter"
    if stripped.count("{") > stripped.count("}"):
        return "close the block with `}`"
    return None


def _describe(expected: set[str] | frozenset[str]) -> str:
    names = sorted({_TERMINAL_NAMES.get(t, _literal(t)) for t in expected})
    names = [n for n in names if n]
    if not names:
        return "something else"
    if len(names) > 8:
        names = [*names[:8], "…"]
    return "one of " + ", ".join(names) if len(names) > 1 else names[0]


_ANON = {
    "EQUAL": "'='",
    "COMMA": "','",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "SEMICOLON": "';'",
    "DOT": "'.'",
    "COLON": "':'",
    "__ANON_0": "'**'",
}


def _literal(terminal: str) -> str:
    if terminal in _ANON:
        return _ANON[terminal]
    lowered = terminal.lower()
    if lowered in KEYWORDS:
        return f"`{lowered}`"
    return ""


def _token_text(token: Token) -> str:
    value = str(token).strip()
    return value[:40] if value else token.type


def _last_line(text: str) -> int:
    return max(1, len(text.rstrip("\n").splitlines()))


# ---- parse tree → AST ----------------------------------------------------------------------------


def _pos(token: Token) -> ast.Pos:
    return ast.Pos(token.line or 1, token.column or 1, token.end_column)


def _names(tokens: list[Token]) -> tuple[tuple[str, ast.Pos], ...]:
    names = tuple((str(t), _pos(t)) for t in tokens if isinstance(t, Token) and t.type == "NAME")
    _check_items(names, lambda name: name[1], "names")
    return names


def _check_items(items: list | tuple, pos_of: Any, what: str) -> None:
    """Refuse more than MAX_ITEMS, at the first one too many."""
    if len(items) > MAX_ITEMS:
        pos = pos_of(items[MAX_ITEMS])
        raise AmmlLimitError(f"more than {MAX_ITEMS} {what} in one list", line=pos.line, column=pos.column,
                             hint="read long lists from a file or a catalog entry instead")


@v_args(inline=True)
class _ToAst(Transformer):
    """Builds AST nodes while parsing (LALR with an embedded transformer: no parse tree is kept)."""

    # -- structure
    @v_args(inline=False)
    def start(self, items: list) -> list:
        return items

    @v_args(inline=False)
    def pipeline_block(self, children: list) -> ast.PipelineBlock:
        name, foreach, after, *statements = children
        return ast.PipelineBlock(str(name), after or (), tuple(statements), _pos(name), foreach)

    def foreach_clause(self, keyword: Token, variable: Token, items: ast.Expr) -> ast.ForEach:
        if str(variable) in KEYWORDS or str(variable) == "params":
            raise AmmlSyntaxError(f"`{variable}` is a keyword and cannot name the loop variable",
                                  line=variable.line, column=variable.column, hint="use e.g. `for series in ...`")
        kind, value = _items_kind(items)
        where = items.obj.pos if isinstance(items, ast.Attribute) else items.pos
        return ast.ForEach(str(variable), kind, value, _pos(variable), where)

    @v_args(inline=False)
    def after_clause(self, children: list) -> tuple:
        return _names(children)

    @v_args(inline=False)
    def dag_block(self, children: list) -> ast.DagBlock:
        keyword, name, *settings = children
        return ast.DagBlock(str(name) if name is not None else None, tuple(settings), _pos(keyword))

    def setting(self, name: Token, value: ast.Expr) -> ast.Setting:
        return ast.Setting(str(name), value, _pos(name))

    def flow_def(self, name: Token, pipe: ast.Pipe) -> ast.FlowDef:
        if str(name) in KEYWORDS:
            raise AmmlSyntaxError(f"`{name}` is a keyword and cannot name a flow", line=name.line, column=name.column)
        return ast.FlowDef(str(name), pipe, _pos(name))

    def flow_stmt(self, pipe: ast.Pipe) -> ast.FlowStmt:
        return ast.FlowStmt(pipe, pipe.pos)

    @v_args(inline=False)
    def pipe(self, children: list) -> ast.Pipe:
        head, *rest = children
        split = rest.pop() if rest and isinstance(rest[-1], ast.Split) else None
        pos = head.pos
        return ast.Pipe(head, tuple(rest), split, pos)

    @v_args(inline=False)
    def join(self, children: list) -> ast.Join:
        return ast.Join(_names(children[1:]), _pos(children[0]))

    @v_args(inline=False)
    def split(self, children: list) -> ast.Split:
        return ast.Split(_names(children[1:]), _pos(children[0]))

    @v_args(inline=False)
    def step(self, children: list) -> ast.Step:
        name, *params = children
        return ast.Step(str(name), tuple(params), _pos(name))

    def param(self, name: Token, value: ast.Expr) -> ast.Param:
        return ast.Param(str(name), value, _pos(name))

    # -- expressions
    def or_op(self, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        return ast.BoolOp(left.pos, "or", left, right)

    def and_op(self, left: ast.Expr, right: ast.Expr) -> ast.Expr:
        return ast.BoolOp(left.pos, "and", left, right)

    def not_op(self, keyword: Token, operand: ast.Expr) -> ast.Expr:
        return ast.Not(_pos(keyword), operand)

    def compare(self, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Expr:
        return ast.Compare(_pos(op), str(op), left, right)

    def binary(self, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Expr:
        return ast.Binary(_pos(op), str(op), left, right)

    def unary(self, op: Token, operand: ast.Expr) -> ast.Expr:
        return ast.Unary(_pos(op), str(op), operand)

    def power(self, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Expr:
        return ast.Binary(_pos(op), "**", left, right)

    def method_call(self, obj: ast.Expr, name: Token, args: list | None) -> ast.Expr:
        return ast.MethodCall(_pos(name), obj, str(name), tuple(args or ()))

    def attribute(self, obj: ast.Expr, name: Token) -> ast.Expr:
        return ast.Attribute(_pos(name), obj, str(name))

    def int_lit(self, token: Token) -> ast.Expr:
        digits = str(token).replace("_", "").lstrip("0") or "0"
        if len(digits) > 20:  # beyond 64 bits anyway, and int() refuses more than 4300 digits
            raise AmmlLimitError(f"integer {digits[:20]}… ({len(digits)} digits) does not fit in 64 bits",
                                 line=token.line, column=token.column, hint="write it as a float, e.g. 1e20")
        return ast.Const(_pos(token), int(digits))

    def float_lit(self, token: Token) -> ast.Expr:
        return ast.Const(_pos(token), float(str(token).replace("_", "")))

    def string_lit(self, token: Token) -> ast.Expr:
        return ast.Const(_pos(token), _unquote(token))

    def true_lit(self, token: Token) -> ast.Expr:
        return ast.Const(_pos(token), True)

    def false_lit(self, token: Token) -> ast.Expr:
        return ast.Const(_pos(token), False)

    def null_lit(self, token: Token) -> ast.Expr:
        return ast.Const(_pos(token), None)

    def field(self, token: Token) -> ast.Expr:
        return ast.Field(_pos(token), str(token))

    def quoted_field(self, token: Token) -> ast.Expr:
        return ast.Field(_pos(token), str(token)[1:-1])

    def param_ref(self, keyword: Token, name: Token) -> ast.Expr:
        return ast.ParamRef(_pos(keyword), str(name))

    def call(self, name: Token, args: list | None) -> ast.Expr:
        return ast.Call(_pos(name), str(name), tuple(args or ()))

    def list_lit(self, bracket: Token, args: list | None) -> ast.Expr:
        return ast.ListExpr(_pos(bracket), tuple(args or ()))

    def dict_lit(self, brace: Token, entries: list | None) -> ast.Expr:
        return ast.DictExpr(_pos(brace), tuple(entries or ()))

    @v_args(inline=False)
    def args(self, children: list) -> list:
        _check_items(children, lambda expr: expr.pos, "values")
        return children

    @v_args(inline=False)
    def entries(self, children: list) -> list:
        _check_items(children, lambda entry: entry[1].pos, "entries")
        return children

    def entry(self, key: Token, value: ast.Expr) -> tuple[str, ast.Expr]:
        return (_unquote(key) if key.type == "STRING" else str(key), value)


ITEMS_HINT = ('write `for VAR in ["a", "b"]`, `for VAR in params.NAME` (a run parameter holding a list), '
              '`for VAR in catalog("nab/*")` or `for VAR in PIPELINE.COLUMN`')


def _items_kind(items: ast.Expr) -> tuple[str, Any]:
    """What `for VAR in ITEMS` iterates over: (kind, value), see :class:`compiler.ast.ForEach`."""
    if isinstance(items, ast.ListExpr):
        return "list", items
    if isinstance(items, ast.ParamRef):
        return "param", items.name
    if isinstance(items, ast.Call) and items.func == "catalog":
        return "catalog", items
    if isinstance(items, ast.Attribute) and isinstance(items.obj, ast.Field):
        return "pipeline", (items.obj.name, items.name)
    raise AmmlSyntaxError("a fanned-out pipeline iterates over a list, a run parameter, a catalog glob or "
                          "another pipeline's items", line=items.pos.line, column=items.pos.column, hint=ITEMS_HINT)


def _unquote(token: Token) -> str:
    text = str(token)
    try:
        value = py_ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise AmmlSyntaxError(
            f"invalid escape in string {text[:40]}",
            line=token.line,
            column=token.column,
            hint="escapes follow Python's rules: \\n, \\t, \\\\, \\', \\\"",
        ) from exc
    if not isinstance(value, str):  # literal_eval of a quoted token always gives str; keep the type honest
        raise AmmlSyntaxError(f"invalid string {text[:40]}", line=token.line, column=token.column)
    surrogate = _SURROGATE.search(value)
    if surrogate:  # '\\ud800': not a character; the program could not be cached, shown or sent as UTF-8
        raise AmmlSyntaxError(
            f"the escape {ascii(surrogate.group())[1:-1]} in string {text[:40]} is a lone surrogate, not a "
            "character",
            line=token.line,
            column=token.column,
            hint="write the character itself, or its \\U0001xxxx escape for one outside the basic plane",
        )
    return value
