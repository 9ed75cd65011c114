"""A small formula language for classification losses over the NeuroLoss search space (never Python ``eval``).

A formula is evaluated elementwise over the classes of each sample; its inputs are

- ``p``: the softmax probabilities, ``y``: the one-hot label (optionally smoothed), both ``[N, K]``;
- ``K``: the number of classes; numeric constants (``2.4092``, ``1e-7``, ``.5``).

Grammar (usual precedence, left-associative; unary minus binds tighter than ``*`` and ``/``)::

    expr    := term (("+" | "-") term)*
    term    := factor (("*" | "/") factor)*
    factor  := "-" factor | primary
    primary := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

The operator set is the one of Morgan and Hougen's neural loss function evolution (27 unary and 7 binary
operators); ``eps = 1e-7`` appears exactly where their code puts it, inside logarithms and divisions, and
nowhere else (``p`` is not clipped). ``x / z`` is their protected division ``x / (z + eps)``. ``cos`` is an
addition of sfda (NGL needs it). Errors are :class:`FormulaError` with the 1-based position in the formula.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple, Union

import torch
from torch.special import erf, erfc, i0, i0e, i1, i1e

EPS = 1e-7
Tensor = torch.Tensor

UNARY: Dict[str, Tuple[Callable[[Tensor], Tensor], str]] = {
    "neg": (lambda x: -x, "-x"),
    "log": (lambda x: torch.log(torch.abs(x) + EPS), "ln(|x| + eps)"),
    "log10": (lambda x: torch.log10(torch.abs(x) + EPS), "log10(|x| + eps)"),
    "exp": (torch.exp, "e^x"),
    "abs": (torch.abs, "|x|"),
    "sigmoid": (torch.sigmoid, "1 / (1 + e^-x)"),
    "inv1p_abs": (lambda x: 1.0 / (1.0 + torch.abs(x)), "1 / (1 + |x|)"),
    "softplus": (lambda x: torch.log(torch.abs(1.0 + torch.exp(x)) + EPS), "ln(|1 + e^x| + eps)"),
    "erf": (erf, "error function"),
    "erfc": (erfc, "1 - erf(x)"),
    "sin": (torch.sin, "sine"),
    "sinh": (torch.sinh, "hyperbolic sine"),
    "asinh": (torch.asinh, "inverse hyperbolic sine"),
    "tanh": (torch.tanh, "hyperbolic tangent"),
    "atan": (torch.atan, "inverse tangent"),
    "inv": (lambda x: 1.0 / (x + EPS), "1 / (x + eps)"),
    "i0": (i0, "modified Bessel function I0"),
    "i0e": (i0e, "exponentially scaled I0: e^-|x| I0(x)"),
    "i1": (i1, "modified Bessel function I1"),
    "i1e": (i1e, "exponentially scaled I1: e^-|x| I1(x)"),
    "max0": (lambda x: torch.clamp_min(x, 0.0), "max(x, 0)"),
    "min0": (lambda x: torch.clamp_max(x, 0.0), "min(x, 0)"),
    "square": (torch.square, "x^2"),
    "sqrt_abs": (lambda x: torch.sqrt(torch.abs(x)), "sqrt(|x|) (infinite derivative at 0, as in the reference)"),
    "softsign": (lambda x: x / (1.0 + torch.abs(x)), "x / (1 + |x|)"),
    "sech2": (lambda x: 1.0 - torch.tanh(x) ** 2, "1 - tanh(x)^2"),
    "dsigmoid": (lambda x: torch.sigmoid(x) * (1.0 - torch.sigmoid(x)), "sigmoid(x) (1 - sigmoid(x))"),
}
EXTRA_UNARY: Dict[str, Tuple[Callable[[Tensor], Tensor], str]] = {
    "cos": (torch.cos, "cosine (not in the NeuroLoss set; NGL uses it)"),
}
BINARY: Dict[str, Tuple[Callable[[Tensor, Tensor], Tensor], str]] = {
    "add": (lambda a, b: a + b, "a + b"),
    "sub": (lambda a, b: a - b, "a - b"),
    "mul": (lambda a, b: a * b, "a * b"),
    "max": (torch.maximum, "max(a, b)"),
    "min": (torch.minimum, "min(a, b)"),
    "div": (lambda a, b: a / (b + EPS), "a / (b + eps)"),
    "div_hypot": (lambda a, b: a / torch.sqrt(1.0 + b * b), "a / sqrt(1 + b^2)"),
}
ALIASES = {"ln": "log"}
INFIX = {"+": "add", "-": "sub", "*": "mul", "/": "div"}
VARIABLES = ("p", "y", "K")

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>[-+*/(),]))"
)


class FormulaError(ValueError):
    """A formula that does not parse: the reason and the 1-based position of the offending character."""

    def __init__(self, position: int, what: str, detail: str):
        super().__init__(f"{what} at position {position}: {detail}")
        self.position = position


@dataclass(frozen=True)
class Node:
    kind: str  # "num", "var" or "call"
    value: Union[float, str]
    args: Tuple[Node, ...] = ()
    position: int = 1


def tokenize(text: str) -> List[Tuple[str, str, int]]:
    """(kind, text, 1-based position) for each token, ending with ("end", "", position after the text)."""
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            start = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise FormulaError(start + 1, "syntax error", f"unexpected character {text[start]!r}")
        kind = match.lastgroup or "op"
        tokens.append((kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    tokens.append(("end", "", len(text.rstrip()) + 1))
    return tokens


def _describe(token: Tuple[str, str, int]) -> str:
    return "the end of the formula" if token[0] == "end" else repr(token[1])


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> Tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> Tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token[1] != text or token[0] != "op":
            raise FormulaError(token[2], "syntax error", f"expected {text!r}, got {_describe(token)}")

    def expr(self) -> Node:
        return self.left_associative(self.term, ("+", "-"))

    def term(self) -> Node:
        return self.left_associative(self.factor, ("*", "/"))

    def left_associative(self, operand: Callable[[], Node], operators: Tuple[str, ...]) -> Node:
        """``operand (op operand)*`` for the infix ``operators`` of one precedence level, grouped to the left."""
        node = operand()
        while self.peek()[1] in operators and self.peek()[0] == "op":
            op = self.take()
            node = Node("call", INFIX[op[1]], (node, operand()), op[2])
        return node

    def factor(self) -> Node:
        token = self.peek()
        if token == ("op", "-", token[2]):
            self.take()
            return Node("call", "neg", (self.factor(),), token[2])
        return self.primary()

    def primary(self) -> Node:
        kind, text, pos = self.take()
        if kind == "num":
            return Node("num", float(text), position=pos)
        if kind == "op" and text == "(":
            node = self.expr()
            self.expect(")")
            return node
        if kind != "name":
            raise FormulaError(
                pos, "syntax error", f"expected a number, a name or '(', got {_describe((kind, text, pos))}"
            )
        if self.peek()[1] != "(" or self.peek()[0] != "op":
            if text not in VARIABLES:
                hint = " (an operator needs its argument in parentheses)" if _arity(text) else ""
                raise FormulaError(pos, "unknown variable", f"{text!r}{hint}; the variables are p, y and K")
            return Node("var", text, position=pos)
        name = ALIASES.get(text, text)
        arity = _arity(name)
        if arity == 0:
            close = difflib.get_close_matches(text, operator_names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else " (docs/losses.md lists the operators)"
            raise FormulaError(pos, "unknown operator", f"{text!r}{hint}")
        self.take()
        args = [self.expr()]
        while self.peek()[1] == "," and self.peek()[0] == "op":
            self.take()
            args.append(self.expr())
        self.expect(")")
        if len(args) != arity:
            raise FormulaError(pos, "wrong number of arguments", f"{text!r} takes {arity}, got {len(args)}")
        return Node("call", name, tuple(args), pos)


def _arity(name: str) -> int:
    if name in UNARY or name in EXTRA_UNARY:
        return 1
    return 2 if name in BINARY else 0


def operator_names() -> List[str]:
    return sorted([*UNARY, *EXTRA_UNARY, *BINARY, *ALIASES])


def parse(text: str) -> Node:
    """The syntax tree of ``text``; :class:`FormulaError` (with the position) if it is not a formula."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError(1, "syntax error", "the formula is empty")
    parser = _Parser(text)
    node = parser.expr()
    token = parser.peek()
    if token[0] != "end":
        raise FormulaError(token[2], "syntax error", f"unexpected {_describe(token)}")
    return node


def evaluate(node: Node, inputs: Dict[str, Tensor]) -> Tensor:
    """The value of ``node`` for ``inputs`` (``p``, ``y``: float32 tensors; ``K``: a float32 scalar tensor)."""
    if node.kind == "num":
        return torch.tensor(float(node.value), dtype=torch.float32, device=inputs["p"].device)
    if node.kind == "var":
        return inputs[str(node.value)]
    values = [evaluate(arg, inputs) for arg in node.args]
    name = str(node.value)
    if name in BINARY:
        return BINARY[name][0](values[0], values[1])
    return {**UNARY, **EXTRA_UNARY}[name][0](values[0])


def to_text(node: Node) -> str:
    """The formula in prefix form (``add(p, mul(2, y))``): unambiguous, for messages and tests."""
    if node.kind == "num":
        return f"{float(node.value):g}"
    if node.kind == "var":
        return str(node.value)
    return f"{node.value}({', '.join(to_text(arg) for arg in node.args)})"
