"""The AST rewrite that routes loops, ``~``, slices, literals and literal output through the
budget and folds constant arithmetic only after checking it, and the compile-time deadline
checks in the lexer and the code generator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.visitor import NodeTransformer

from mailroom.compose.sandbox.budget import tick
from mailroom.compose.sandbox.operators import OPERATORS, check_binop
from mailroom.compose.sandbox.runtime import BUILD, CHARGE, CONCAT, LOOP, SLICE

__all__ = ["BoundedCodeGenerator", "CompileDeadline", "rewrite"]


_MAX_FOLDED = 10_000  # longest string a constant expression is folded into while compiling


def _internal_filter(node: nodes.Expr, name: str, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class _Rewrite(NodeTransformer):
    """Routes loops, ``~`` and literal output through the budget (see
    :mod:`mailroom.compose.sandbox`)."""

    # NodeTransformer dispatches on the node class's name: visit_For, visit_Concat, ...
    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        node.iter = _internal_filter(cast(nodes.Expr, node.iter), LOOP)
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:  # noqa: N802
        # Jinja compiles x[a:b] to plain Python slicing, past the sandbox's getitem; a slice
        # is a copy, so it goes through a filter that charges it.
        self.generic_visit(node)
        if not isinstance(node.arg, nodes.Slice) or node.ctx != "load":
            return node
        bounds = [
            part if part is not None else nodes.Const(None, lineno=node.lineno)
            for part in (node.arg.start, node.arg.stop, node.arg.step)
        ]
        return _internal_filter(node.node, SLICE, *bounds)

    def _built(self, node: nodes.List | nodes.Tuple | nodes.Dict) -> nodes.Node:
        # A literal holding big values is as heavy as all of them together.
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # {% for a, b in ... %}: a target, not a value
        return _internal_filter(node, BUILD)

    visit_List = visit_Tuple = visit_Dict = _built  # noqa: N815

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return _internal_filter(nodes.List(node.nodes, lineno=node.lineno), CONCAT)

    def _fold(self, node: nodes.BinExpr) -> nodes.Node:
        """Fold an operator on two constants, as Jinja would, but checked first: so that
        ``{{ 9**(9**9) }}`` is refused when the template is saved, not when it is sent."""
        self.generic_visit(node)
        if not (isinstance(node.left, nodes.Const) and isinstance(node.right, nodes.Const)):
            return node
        left, right = node.left.value, node.right.value
        check_binop(node.operator, left, right)  # TemplateLimitError: refuse the template
        try:
            value = OPERATORS[node.operator](left, right)
        except Exception:
            return node  # 1/0 and the like fail when rendered, as Jinja leaves them
        if isinstance(value, str) and len(value) > _MAX_FOLDED:
            return node  # built (and charged) when rendered, not kept in the compiled code
        return nodes.Const(value, lineno=node.lineno)

    visit_Add = visit_Sub = visit_Mul = visit_Div = _fold  # noqa: N815
    visit_FloorDiv = visit_Mod = visit_Pow = _fold  # noqa: N815

    def visit_Output(self, node: nodes.Output) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        literal = sum(len(n.data) for n in node.nodes if isinstance(n, nodes.TemplateData))
        if literal:
            empty = nodes.Const("", lineno=node.lineno)
            node.nodes.append(_internal_filter(empty, CHARGE, nodes.Const(literal)))
        return node


def rewrite(tree: nodes.Template) -> nodes.Template:
    _Rewrite().visit(tree)
    # Every template, included or extended ones too, checks the deadline when it starts.
    start = _internal_filter(nodes.Const("", lineno=1), CHARGE, nodes.Const(0))
    tree.body.insert(0, nodes.Output([start], lineno=1))
    return tree


class CompileDeadline(Extension):
    """Checks the deadline while the lexer and parser work through the tokens."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        for count, token in enumerate(stream):
            if count % 256 == 0:
                tick()
            yield token


class BoundedCodeGenerator(CodeGenerator):
    """Checks the deadline at every node the code generator visits."""

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        tick()
        return super().visit(node, *args, **kwargs)
