"""Every mistake a user can make is an AmmlError with file:line:column, a caret and, where it fits, a hint."""

import pytest

from compiler import AmmlCompileErrors, AmmlError, ProgramCache, compile_source
from compiler.errors import (
    AmmlFlowError,
    AmmlLimitError,
    AmmlNameError,
    AmmlSafetyError,
    AmmlSyntaxError,
    AmmlTypeError,
)


def error_of(text):
    with pytest.raises(AmmlError) as info:
        compile_source(text, "bad.amml", cache=ProgramCache())
    return info.value


def all_errors(text):
    exc = error_of(text)
    return exc.errors if isinstance(exc, AmmlCompileErrors) else [exc]


CASES = [
    # (source, error class, line, column, words in the message or hint)
    ("source id='ett' |", AmmlSyntaxError, 1, 18, ["`|` must be followed"]),
    ("source id='ett' | filter cond=OT = 3 | print", AmmlSyntaxError, 1, 34, ["`==`"]),
    ("normalsource col='v' mean=2 | print", AmmlSyntaxError, 1, 22, ["separate parameters with `,`"]),
    ("source id=\"ett | print", AmmlSyntaxError, 1, 11, ["unterminated string"]),
    ("source id='x' | filter cond=a && b | print", AmmlSyntaxError, 1, 31, ["`and`"]),
    ("source id='ett' | fitler cond=OT > 1 | print", AmmlNameError, 1, 19, ["unknown component", "`filter`"]),
    ("source id='ett', lmit=3 | print", AmmlNameError, 1, 18, ["no parameter `lmit`", "`limit`"]),
    ("source | print", AmmlTypeError, 1, 1, ["needs the parameter `id`"]),
    ("source id=3 | print", AmmlTypeError, 1, 11, ["must be str", "got int 3"]),
    ("normalsource col=val1 | print", AmmlTypeError, 1, 18, ["must be a constant str", "col='val1'"]),
    ("source id='x' | print level='x'", AmmlNameError, 1, 23, ["no parameter `level`"]),
    ("source id='x' | alert cond=OT > 1, level='loud'", AmmlTypeError, 1, 42, ["one of"]),
    ("x | print", AmmlNameError, 1, 1, ["unknown component `x`"]),
    ("join a, b | print", AmmlNameError, 1, 6, ["flow `a` is used but never defined"]),
    ("source id='x' | print | filter cond=1", AmmlFlowError, 1, 25, ["egress must be the last"]),
    ("filter cond=1 | print", AmmlFlowError, 1, 1, ["needs input"]),
    ("a = normalsource\na | normalsource | print", AmmlFlowError, 2, 5, ["ingress"]),
    ("a = b | filter cond=1\nb = a | filter cond=1\na | print", AmmlFlowError, 1, 1, ["cycle", "a → b → a"]),
    ("a = normalsource\nnormalsource | print", AmmlFlowError, 1, 1, ["never used"]),
    ("a = normalsource | print\na | print", AmmlFlowError, 1, 1, ["ends in an egress"]),
    ("print = normalsource\nprint | print", AmmlNameError, 1, 1, ["name of a component"]),
    ("pipeline p after q { normalsource | print }", AmmlNameError, 1, 18, ["`q`, which is not defined"]),
    ("pipeline p after p { normalsource | print }", AmmlFlowError, 1, 10, ["cycle"]),
    ("dag d { shedule = '@daily' }\nnormalsource | print", AmmlNameError, 1, 9, ["`schedule`"]),
    ("dag d { catchup = 'no' }\nnormalsource | print", AmmlTypeError, 1, 19, ["catchup"]),
    ("dag d { params = {a: 1} }\nsource id=params.b | print", AmmlNameError, 2, 11, ["not declared"]),
    ("dag d { batch_rows = 0 }\nnormalsource | print", AmmlTypeError, 1, 22, ["batch_rows", "at least 1", "got 0"]),
    ("dag d { flush_delay = '1s' }\nnormalsource | print", AmmlTypeError, 1, 23, ["flush_delay", "seconds"]),
    ("source id='x' | filter cond=x.__class__ | print", AmmlSafetyError, 1, 31, ["double underscore"]),
    ("source id='x' | filter cond=x.upper | print", AmmlSafetyError, 1, 31, ["attribute access"]),
    ("source id='x' | filter cond=x.format() | print", AmmlSafetyError, 1, 31, ["not allowed"]),
    ("source id='x' | filter cond=__import__('os') | print", AmmlSafetyError, 1, 29, ["double underscore"]),
    ("source id='x' | filter cond=eval('1') | print", AmmlNameError, 1, 29, ["unknown function `eval`"]),
    ("source id='x' | filter cond=x > 10 ** 10 ** 10 | print", AmmlLimitError, 1, 36, ["too large", "not computed"]),
    ("source id='x' | filter cond=x == 'ab' * 999999999 | print", AmmlTypeError, 1, 39, ["repetition"]),
    ("source id='x' | filter cond=x > 99999999999999999999 | print", AmmlLimitError, 1, 33, ["64 bits"]),
    ("source id='x' | filter cond=sqrt(1, 2) > x | print", AmmlTypeError, 1, 29, ["takes 1 argument"]),
    ("source id='x' | filter cond='a' + 1 > x | print", AmmlTypeError, 1, 33, ["cannot apply `+`"]),
    ("source id='x' | filter cond=" + "(" * 100 + "x" + ")" * 100 + " | print", AmmlLimitError, 1, 93, ["nested"]),
    ("", AmmlFlowError, 1, 1, ["no pipeline"]),
]


@pytest.mark.parametrize(("text", "cls", "line", "column", "words"), CASES, ids=[c[0][:40] for c in CASES])
def test_error_names_place_and_fix(text, cls, line, column, words):
    errors = all_errors(text)
    found = [e for e in errors if isinstance(e, cls)]
    assert found, f"expected {cls.__name__}, got {[type(e).__name__ for e in errors]}: {errors}"
    err = found[0]
    assert (err.line, err.column) == (line, column), str(err)
    rendered = str(err)
    assert rendered.startswith(f"bad.amml:{line}:{column}: ")
    for word in words:
        assert word in rendered, rendered
    if text:
        assert "^" in rendered, "the source line is shown with a caret"


def test_all_errors_of_a_file_are_reported_together():
    errors = all_errors("source id=1 | fitler | print\nnormalsource sed=3 | print")
    assert len(errors) == 3
    assert [e.line for e in errors] == [1, 1, 2]


def test_caret_sits_under_the_column():
    err = error_of("source id='ett' | fitler | print")
    line, caret = err.context().splitlines()
    assert line.index("fitler") == caret.index("^")


def test_errors_in_one_pipeline_do_not_hide_another():
    errors = all_errors("pipeline a { fitler | print }\npipeline b { source | print }")
    assert {type(e) for e in errors} == {AmmlNameError, AmmlTypeError}


def test_one_hierarchy_whose_root_claims_no_position():
    """Every error a user can cause is an AmmlError; only SourceErrors carry a file position. The registry's
    errors name their subject instead of a fake file name, and the VM's SemanticError is in the family."""
    from airflow_amml.models.errors import AmmlModelError, ModelDataError
    from airflow_amml.registry.errors import ModelNotFoundError, RegistryError
    from airflow_amml.runtime.errors import PipelineError
    from compiler.errors import AmmlError, SourceError
    from compiler.semantics import SemanticError

    for cls in (SourceError, PipelineError, AmmlModelError, ModelDataError, RegistryError, SemanticError):
        assert issubclass(cls, AmmlError), cls
    for cls in (PipelineError, AmmlModelError, AmmlNameError, AmmlTypeError):
        assert issubclass(cls, SourceError), cls
    for cls in (RegistryError, SemanticError):
        assert not issubclass(cls, SourceError), cls

    root = AmmlError("something is wrong", hint="fix it")
    assert not hasattr(root, "filename") and root.location is None
    assert str(root) == "error: something is wrong\nhint: fix it"
    missing = ModelNotFoundError("no model `ett`", hint="amml model list")
    assert not hasattr(missing, "filename")
    assert str(missing) == "model registry: model not found: no model `ett`\nhint: amml model list"
    # a SemanticError is always reported by a caller that adds the place: its own text is the bare message
    assert str(SemanticError("cannot apply `+` to str and int")) == "cannot apply `+` to str and int"
    located = SourceError("bad", filename="f.amml", line=2, column=3, source="a\nbcdef")
    assert str(located).startswith("f.amml:2:3: error: bad\n")
