"""A runner's source specialised to its closure: the branches its layers' presence decides, decided once.

The fused runner (``fused.py``) is one function covering every combination of built-in layers; each call of it
tests, step by step, whether a layer is there (``if timeout is not None``, ~25 tests a call) and carries the
frame slots of every layer. What those tests answer is fixed when the stack is built: it is the runner's closure.
:func:`specialise` compiles a copy of the runner with those answers folded in — a test of a closure variable
against ``None`` (or of a ``bool`` one) becomes a constant, a branch it decides is kept or dropped — so a call runs
only the steps of the layers present. The copy is the same source otherwise (the same file and line numbers in a
traceback), compiled once per combination and shared by every stack of that combination.

:func:`specialise` can also inline the runner into an entry function that ends with ``return await run(...)``
(``Wrapped.__call__``'s work): one coroutine frame a call instead of two.
"""

from __future__ import annotations

import ast
import copy
import inspect
import textwrap
import weakref
from collections.abc import Callable, Mapping
from typing import Any

# A fact: an expression's text and what it is known to be — ``None`` (or not) in a ``... is None`` test, true
# (or not) where a test reads it.
Facts = Mapping[str, bool]

_TREES: dict[Any, ast.AsyncFunctionDef | ast.FunctionDef] = {}
_FACTORIES: dict[tuple[Any, ...], Callable[..., Any]] = {}
# What each specialised runner was made from, so an entry can inline the same runner.
_TEMPLATE_OF: weakref.WeakKeyDictionary[Callable[..., Any], tuple[Callable[..., Any], Facts, Facts]] = (
    weakref.WeakKeyDictionary()
)
_PURE = (ast.Name, ast.Attribute, ast.Constant, ast.Compare, ast.BoolOp, ast.UnaryOp)


def _tree(fn: Callable[..., Any]) -> ast.AsyncFunctionDef | ast.FunctionDef:
    """``fn``'s definition, its line numbers those of its file (a traceback shows the real lines)."""
    code = fn.__code__
    tree = _TREES.get(code)
    if tree is None:
        module = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        ast.increment_lineno(module, code.co_firstlineno - 1)
        node = module.body[0]
        assert isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef), "a function's own source"
        tree = _TREES[code] = node
    return tree


class _Fold(ast.NodeTransformer):
    """Replaces what the facts decide: tests become constants, decided branches are kept or dropped."""

    def __init__(self, is_set: Facts, truth: Facts) -> None:
        self.is_set = is_set  # expression text -> "is not None"
        self.truth = truth  # expression text -> its truth

    def test(self, node: ast.expr) -> ast.expr:
        """``node`` where only its truth matters (an ``if``'s test, an operand of ``and``/``or``/``not``)."""
        text = ast.unparse(node)
        if text in self.truth:
            return ast.Constant(self.truth[text])
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            right = node.comparators[0]
            left = ast.unparse(node.left)
            if isinstance(right, ast.Constant) and right.value is None and left in self.is_set:
                if isinstance(node.ops[0], ast.IsNot):
                    return ast.Constant(self.is_set[left])
                if isinstance(node.ops[0], ast.Is):
                    return ast.Constant(not self.is_set[left])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            operand = self.test(node.operand)
            if isinstance(operand, ast.Constant):
                return ast.Constant(not operand.value)
            node.operand = operand
            return node
        if isinstance(node, ast.BoolOp):
            return self.boolean(node)
        return self.visit(node)  # type: ignore[no-any-return]

    def boolean(self, node: ast.BoolOp) -> ast.expr:
        # ``and``: a true operand adds nothing, a false one decides (what comes before it is only read, never
        # called: dropping it changes no effect); ``or`` the other way round.
        decisive = isinstance(node.op, ast.Or)
        kept: list[ast.expr] = []
        for value in node.values:
            value = self.test(value)
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                if value.value is not decisive:
                    continue
                if all(isinstance(k, _PURE) and not _calls(k) for k in kept):
                    return ast.Constant(decisive)
            kept.append(value)
        if not kept:
            return ast.Constant(not decisive)
        if len(kept) == 1:
            return kept[0]
        node.values = kept
        return node

    def block(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for statement in body:
            result = self.visit(statement)
            if result is None:
                continue
            out.extend(result if isinstance(result, list) else [result])
        return out

    def visit_If(self, node: ast.If) -> Any:
        test = self.test(node.test)
        if isinstance(test, ast.Constant):
            return self.block(node.body if test.value else node.orelse) or None
        node.test = test
        node.body = self.block(node.body) or [ast.Pass()]
        node.orelse = self.block(node.orelse)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        test = self.test(node.test)
        if isinstance(test, ast.Constant):
            return self.visit(node.body if test.value else node.orelse)
        node.test, node.body, node.orelse = test, self.visit(node.body), self.visit(node.orelse)
        return node

    def visit_Try(self, node: ast.Try) -> Any:
        self.generic_visit(node)
        # A handler that only re-raises, last of its try, catches nothing the try would not raise anyway.
        while node.handlers and _reraises(node.handlers[-1]):
            node.handlers.pop()
        if not node.handlers:
            if node.orelse:  # an ``else`` runs when the body raised nothing: with no handler, after the body
                node.body, node.orelse = node.body + node.orelse, []
            if not node.finalbody:
                return node.body  # nothing left around the body
        return node

    def visit_Assert(self, node: ast.Assert) -> Any:
        test = self.test(node.test)
        if isinstance(test, ast.Constant) and test.value:
            return None
        node.test = test
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        # Statement lists (a try's body, handlers, finally) folded as blocks: an emptied one holds a ``pass``.
        for field in ("body", "orelse", "finalbody", "handlers"):
            value = getattr(node, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt | ast.excepthandler):
                folded = self.block(value) if field != "handlers" else [self.visit(h) for h in value]
                setattr(node, field, folded or ([ast.Pass()] if field == "body" else []))
        for field, value in ast.iter_fields(node):
            if field in ("body", "orelse", "finalbody", "handlers") and isinstance(value, list):
                continue
            if isinstance(value, ast.AST):
                setattr(node, field, self.visit(value))
            elif isinstance(value, list):
                setattr(node, field, [self.visit(v) if isinstance(v, ast.AST) else v for v in value])
        return node


def _inlined(statement: ast.stmt, fn: Callable[..., Any], namespace: dict[str, Any]) -> list[ast.stmt] | None:
    """``x = fn(a, b)``, ``fn`` a function of straight statements ending ``return y``, as those statements
    (``y`` named ``x``, each parameter replaced by its argument or default): the call's frame saved. Only what
    keeps the meaning: arguments that are names, attributes or constants, each parameter read once, and the
    names ``fn`` reads meaning the same where it is inlined; else ``None`` (the call stays)."""
    if not (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
        and isinstance(statement.value, ast.Call)
        and ast.unparse(statement.value.func) == fn.__name__
        and not statement.value.keywords
        and all(isinstance(a, ast.Name | ast.Attribute | ast.Constant) for a in statement.value.args)
    ):
        return None
    tree = copy.deepcopy(_tree(fn))
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    last = body[-1]
    if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name)):
        return None
    params = [a.arg for a in tree.args.args]
    values = dict(zip(params[len(params) - len(tree.args.defaults) :], tree.args.defaults, strict=True))
    values.update(zip(params, statement.value.args, strict=False))
    local, target = last.value.id, statement.targets[0].id
    reads = [n for s in body[:-1] for n in ast.walk(s) if isinstance(n, ast.Name)]
    if any(sum(1 for n in reads if n.id == p) > 1 for p in params):
        return None
    for name in {n.id for n in reads} - {*params, local}:
        if fn.__globals__.get(name, namespace) is not namespace.get(name, fn):
            return None  # a name that means something else where it would be inlined

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.expr:
            if node.id in values:
                return copy.deepcopy(values[node.id])
            if node.id == local:
                node.id = target
            return node

    inlined = [Substitute().visit(s) for s in body[:-1]]
    for s in inlined:
        ast.copy_location(s, statement)
        for child in ast.walk(s):
            if isinstance(child, ast.stmt | ast.expr):
                ast.copy_location(child, statement)  # a traceback points at the call
    return inlined


def _reraises(handler: ast.excepthandler) -> bool:
    body = handler.body  # type: ignore[attr-defined]
    return len(body) == 1 and isinstance(body[0], ast.Raise) and body[0].exc is None


def _calls(node: ast.expr) -> bool:
    return any(isinstance(n, ast.Call | ast.Await) for n in ast.walk(node))


def _facts(fn: Callable[..., Any]) -> tuple[dict[str, Any], dict[str, bool], dict[str, bool]]:
    """``fn``'s closure, and the facts it holds: which variables are ``None``, which ``bool`` ones true. Valid
    because a runner's enclosing function binds each variable once, before defining it."""
    values = {
        name: cell.cell_contents
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True)
    }
    is_set = {name: value is not None for name, value in values.items()}
    truth = {name: value for name, value in values.items() if type(value) is bool}
    return values, is_set, truth


def specialise(
    run: Callable[..., Any],
    known: Facts | None = None,
    truth: Facts | None = None,
    *,
    entry: Callable[..., Any] | None = None,
    inline: Callable[..., Any] | None = None,
) -> Callable[..., Any]:
    """``run`` compiled with its closure's facts (and ``known`` / ``truth``, more of them: expression text ->
    "is not None" / its truth) folded in; with an ``entry`` ending ``return await run(a, b)``, that entry with
    ``run``'s body in place of its last statement (its ``a``, ``b`` are ``run``'s parameters' names), and the
    entry's ``x = inline(...)`` statements replaced by ``inline``'s own (see :func:`_inlined`)."""
    values, is_set, truths = _facts(run)
    is_set.update(known or {})
    truths.update(truth or {})
    entry_values: dict[str, Any] = {}
    if entry is not None:
        entry_values, _, _ = _facts(entry)
        entry_values.pop(run.__name__, None)
    key = (
        run.__code__,
        entry.__code__ if entry is not None else None,
        inline.__code__ if inline is not None else None,
        tuple(sorted(is_set.items())),
        tuple(sorted(truths.items())),
    )
    factory = _FACTORIES.get(key)
    if factory is None:
        try:
            factory = _compile(run, entry, inline, is_set, truths, sorted({*values, *entry_values}))
        except (OSError, TypeError):
            # No source to read (an application frozen without its .py files): what runs is the function as
            # written (this one, with its own closure), which decides the same things on every call.
            factory = None
        else:
            _FACTORIES[key] = factory
    made: Callable[..., Any] = (
        factory(**values, **entry_values) if factory is not None else entry if entry is not None else run
    )
    if entry is None:
        _TEMPLATE_OF[made] = (run, dict(known or {}), dict(truth or {}))
    return made


def template_of(run: Callable[..., Any]) -> tuple[Callable[..., Any], Facts, Facts] | None:
    """What a runner :func:`specialise` made was made from: ``(template, known, truth)``."""
    return _TEMPLATE_OF.get(run)


def _compile(
    run: Callable[..., Any],
    entry: Callable[..., Any] | None,
    inline: Callable[..., Any] | None,
    is_set: Facts,
    truth: Facts,
    closure: list[str],
) -> Callable[..., Any]:
    # Copies: the fold rewrites the tree it walks, and the parsed trees serve every combination.
    node = copy.deepcopy(_tree(run))
    body = _Fold(is_set, truth).block(node.body)
    if entry is not None:
        outer = copy.deepcopy(_tree(entry))
        if entry.__globals__ is not run.__globals__:
            raise ValueError("an entry inlines a runner of its own module (the body reads its globals)")
        last = outer.body[-1]
        params = [a.arg for a in node.args.posonlyargs + node.args.args]
        if not (
            isinstance(last, ast.Return)
            and isinstance(last.value, ast.Await)
            and isinstance(last.value.value, ast.Call)
            and ast.unparse(last.value.value.func) == run.__name__
            and [ast.unparse(a) for a in last.value.value.args] == params
        ):
            raise ValueError(f"{entry.__qualname__} must end with `return await {run.__name__}(...)`")
        prologue = outer.body[:-1]
        if inline is not None:
            prologue = [done for s in prologue for done in _inlined(s, inline, entry.__globals__) or [s]]
        function = ast.AsyncFunctionDef(
            name=outer.name, args=outer.args, body=prologue + body, decorator_list=[], returns=None
        )
        ast.copy_location(function, outer)
    else:
        function = ast.AsyncFunctionDef(
            name=node.name, args=node.args, body=body, decorator_list=[], returns=None
        )
        ast.copy_location(function, node)
    function.type_params = []  # type: ignore[attr-defined]  # Python >= 3.12 reads it
    arguments = function.args
    for argument in [
        *arguments.posonlyargs,
        *arguments.args,
        *arguments.kwonlyargs,
        arguments.vararg,
        arguments.kwarg,
    ]:
        if argument is not None:
            argument.annotation = (
                None  # evaluated at each definition otherwise: what they say is in the source
            )
    factory = ast.FunctionDef(
        name="factory",
        args=ast.arguments(
            posonlyargs=[],
            args=[],
            vararg=None,
            kwonlyargs=[ast.arg(arg=name) for name in closure],
            kw_defaults=[None] * len(closure),
            kwarg=None,
            defaults=[],
        ),
        body=[function, ast.Return(ast.Name(function.name, ast.Load()))],
        decorator_list=[],
        returns=None,
    )
    factory.type_params = []  # type: ignore[attr-defined]
    ast.copy_location(factory, function)
    module = ast.fix_missing_locations(ast.Module(body=[factory], type_ignores=[]))
    namespace: dict[str, Any] = {}
    source = entry if entry is not None else run
    exec(compile(module, inspect.getfile(source), "exec"), source.__globals__, namespace)
    made: Callable[..., Any] = namespace["factory"]
    return made
