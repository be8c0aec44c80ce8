"""Small Python programs in the style of Learning to Execute (Zaremba & Sutskever 2014); Trask et al. §4.4.

The composition follows the L2E generator (``wojciechz/learning_to_execute``, ``data.lua`` ``compose`` and
``utils/operations.lua``), restricted to the operations the NALU paper names (``+``, ``-``, variables and
if-statements), rewritten in Python:

* ``nesting`` operations are chained: each operation takes the previous operation's expression as one of
  its operands (at a random position), and fresh integer literals for the others.
* Operations (``OPERATIONS``):

  ========== ========================================================== ==============
  name       source                                                     expression
  ========== ========================================================== ==============
  pair       ``(A+B)`` or ``(A-B)``                                     itself
  vars       statement ``v=A``                                          ``(v+B)`` / ``(v-B)``
  if_expr    ``(C if A<B else D)`` (or ``>``)                           itself
  if_stmt    ``if A<B:`` / ``  v=C`` / ``else:`` / ``  v=D`` (or ``>``) ``v``
  ========== ========================================================== ==============

* The program ends with ``print(EXPR)``. ``kind=addition`` is the single statement ``print((A+B))``.
* Literals have ``digits`` digits: ``digits_range(digits, exact)`` gives ``[0, 10**digits)`` (the
  training range, e.g. ``[0, 100)``) or, with ``exact=True``, ``[10**(digits-1), 10**digits)`` so that every
  literal of an extrapolation test has exactly ``digits`` digits.

Every variable is assigned once and read once, so the printed value is a signed sum of the literals with
coefficients in ``{-1, 0, 1}`` (0 for literals that only take part in comparisons or sit in the branch
not taken). ``Program.coefficients`` records them; an additive unit with those weights computes the answer
exactly. Targets come from this module's own evaluator (``Program.evaluate``); the tests check them
against ``exec`` of the source.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from nalu_suite.errors import ConfigError, check_choice

OPERATIONS = ("pair", "vars", "if_expr", "if_stmt")
KINDS = ("addition", "programs")
#: Variable names (L2E draws unused single letters); one per operation at most.
VARIABLE_NAMES = tuple("abcdefgh")
#: Literals an operation takes: its operand count (one operand is the previous expression when there is one).
OPERANDS = {"pair": 2, "vars": 2, "if_expr": 4, "if_stmt": 4}


# --- expression tree -----------------------------------------------------------------------------
@dataclass
class Literal:
    value: int
    index: int = -1  # position among the program's literals, in order of appearance in the source


@dataclass
class Variable:
    name: str


@dataclass
class BinaryOp:
    op: str  # "+" or "-"
    left: Expr
    right: Expr


@dataclass
class IfExpr:
    """``(then if a CMP b else other)``."""

    cmp: str  # "<" or ">"
    a: Expr
    b: Expr
    then: Expr
    other: Expr


Expr = Literal | Variable | BinaryOp | IfExpr


@dataclass
class Assign:
    name: str
    value: Expr


@dataclass
class IfAssign:
    """``if a CMP b:`` / ``  name=then`` / ``else:`` / ``  name=other``."""

    cmp: str
    a: Expr
    b: Expr
    name: str
    then: Expr
    other: Expr


Statement = Assign | IfAssign


# --- rendering (numbers literals in order of appearance) -----------------------------------------
def _render(node: Expr, literals: list[int]) -> str:
    if isinstance(node, Literal):
        node.index = len(literals)
        literals.append(node.value)
        return str(node.value)
    if isinstance(node, Variable):
        return node.name
    if isinstance(node, BinaryOp):
        left = _render(node.left, literals)
        return f"({left}{node.op}{_render(node.right, literals)})"
    then = _render(node.then, literals)
    a = _render(node.a, literals)
    b = _render(node.b, literals)
    return f"({then} if {a}{node.cmp}{b} else {_render(node.other, literals)})"


def _render_statement(stmt: Statement, literals: list[int]) -> str:
    if isinstance(stmt, Assign):
        return f"{stmt.name}={_render(stmt.value, literals)}"
    a = _render(stmt.a, literals)
    b = _render(stmt.b, literals)
    then = _render(stmt.then, literals)
    other = _render(stmt.other, literals)
    return f"if {a}{stmt.cmp}{b}:\n  {stmt.name}={then}\nelse:\n  {stmt.name}={other}"


# --- evaluation: value and the coefficient of every literal ----------------------------------------
Value = tuple[int, dict[int, int]]  # (value, {literal index: coefficient})


def _compare(cmp: str, a: int, b: int) -> bool:
    return a < b if cmp == "<" else a > b


def _evaluate(node: Expr, env: dict[str, Value]) -> Value:
    if isinstance(node, Literal):
        return node.value, {node.index: 1}
    if isinstance(node, Variable):
        return env[node.name]
    if isinstance(node, BinaryOp):
        (lv, lc), (rv, rc) = _evaluate(node.left, env), _evaluate(node.right, env)
        sign = 1 if node.op == "+" else -1
        coefficients = dict(lc)
        for i, c in rc.items():
            coefficients[i] = coefficients.get(i, 0) + sign * c
        return lv + sign * rv, coefficients
    taken = _compare(node.cmp, _evaluate(node.a, env)[0], _evaluate(node.b, env)[0])
    return _evaluate(node.then if taken else node.other, env)


@dataclass(frozen=True)
class Program:
    """A generated program: its ``source``, the printed ``target`` and the ``literals`` in source order.

    ``coefficients[i]`` is the weight of ``literals[i]`` in the answer: ``target == sum(c * v)``.
    """

    source: str
    target: int
    literals: tuple[int, ...]
    coefficients: tuple[int, ...]


def build_program(statements: Sequence[Statement], expr: Expr) -> Program:
    """Render ``statements`` and ``print(expr)`` to source and evaluate them with this module's evaluator."""
    literals: list[int] = []
    lines = [_render_statement(s, literals) for s in statements]
    lines.append(f"print({_render(expr, literals)})")
    env: dict[str, Value] = {}
    for stmt in statements:
        if isinstance(stmt, Assign):
            env[stmt.name] = _evaluate(stmt.value, env)
        else:
            taken = _compare(stmt.cmp, _evaluate(stmt.a, env)[0], _evaluate(stmt.b, env)[0])
            env[stmt.name] = _evaluate(stmt.then if taken else stmt.other, env)
    target, coefficients = _evaluate(expr, env)
    return Program(
        source="\n".join(lines),
        target=target,
        literals=tuple(literals),
        coefficients=tuple(coefficients.get(i, 0) for i in range(len(literals))),
    )


# --- generation ----------------------------------------------------------------------------------
def digits_range(digits: int, exact: bool = False) -> tuple[int, int]:
    """Half-open range of ``digits``-digit literals: ``[0, 10**d)``; ``[10**(d-1), 10**d)`` if ``exact``."""
    if not isinstance(digits, int) or digits < 1:
        raise ConfigError(f"digits={digits!r} must be an integer >= 1")
    return (10 ** (digits - 1) if exact and digits > 1 else 0), 10**digits


def max_literals(kind: str, nesting: int) -> int:
    """The most literals a program can hold: 2 for addition; ``4 + 3 (nesting - 1)`` for programs."""
    return 2 if kind == "addition" else 4 + 3 * (nesting - 1)


class ProgramGenerator:
    """Draws programs of one ``kind`` with literals of ``digits`` digits (see the module docstring)."""

    def __init__(
        self,
        kind: str = "programs",
        digits: int = 2,
        nesting: int = 2,
        operations: Sequence[str] = OPERATIONS,
        exact_digits: bool = False,
    ) -> None:
        check_choice("task.kind", kind, KINDS)
        self.low, self.high = digits_range(digits, exact_digits)
        if not isinstance(nesting, int) or not 1 <= nesting <= len(VARIABLE_NAMES):
            raise ConfigError(f"task.nesting={nesting!r} must be an integer in [1, {len(VARIABLE_NAMES)}]")
        operations = tuple(operations)
        if not operations:
            raise ConfigError(f"task.operations is empty; choose from: {', '.join(OPERATIONS)}")
        for op in operations:
            check_choice("task.operations entry", op, OPERATIONS)
        self.kind = kind
        self.digits = digits
        self.nesting = nesting
        self.operations = operations

    def _literal(self, rng: random.Random) -> Literal:
        return Literal(rng.randrange(self.low, self.high))

    def sample(self, rng: random.Random) -> Program:
        if self.kind == "addition":
            return build_program([], BinaryOp("+", self._literal(rng), self._literal(rng)))
        statements: list[Statement] = []
        names = rng.sample(VARIABLE_NAMES, self.nesting)
        expr: Expr | None = None
        for step in range(self.nesting):
            op = rng.choice(self.operations)
            operands: list[Expr] = [self._literal(rng) for _ in range(OPERANDS[op])]
            if expr is not None:  # L2E: the previous result takes a random operand slot
                operands[rng.randrange(len(operands))] = expr
            sign = rng.choice("+-")
            cmp = rng.choice("<>")
            if op == "pair":
                expr = BinaryOp(sign, operands[0], operands[1])
            elif op == "vars":
                statements.append(Assign(names[step], operands[0]))
                expr = BinaryOp(sign, Variable(names[step]), operands[1])
            elif op == "if_expr":
                expr = IfExpr(cmp, operands[0], operands[1], operands[2], operands[3])
            else:
                statements.append(
                    IfAssign(cmp, operands[0], operands[1], names[step], operands[2], operands[3])
                )
                expr = Variable(names[step])
        return build_program(statements, expr)

    def samples(self, rng: random.Random, n: int) -> list[Program]:
        return [self.sample(rng) for _ in range(n)]


# --- tokens --------------------------------------------------------------------------------------
NUMBER = "<num>"
PAD = "<pad>"
INDENT = "<indent>"
NEWLINE = "<newline>"
#: Structure tokens; every literal becomes ``NUMBER`` (its value travels beside it, one per time step).
VOCABULARY: tuple[str, ...] = (
    PAD,
    NUMBER,
    NEWLINE,
    INDENT,
    "print",
    "if",
    "else",
    *VARIABLE_NAMES,
    "(",
    ")",
    "+",
    "-",
    "<",
    ">",
    "=",
    ":",
)
TOKEN_IDS = {token: i for i, token in enumerate(VOCABULARY)}
_TOKEN_PATTERN = re.compile(
    r"(?P<indent>^ +)|(?P<num>\d+)|(?P<word>[a-z]+)|(?P<newline>\n)|(?P<sym>[()+\-<>=:])|(?P<space> )", re.M
)


def tokenize(source: str) -> tuple[list[str], list[int | None]]:
    """Split ``source`` into tokens and the integer value each ``NUMBER`` token carries (``None`` elsewhere).

    Blanks inside a line carry no meaning and are dropped; the indentation of a line is one ``INDENT``.
    """
    tokens: list[str] = []
    values: list[int | None] = []
    pos = 0
    for match in _TOKEN_PATTERN.finditer(source):
        if match.start() != pos:
            raise ValueError(f"cannot tokenize {source[pos : match.start()]!r} in program {source!r}")
        pos = match.end()
        kind, text = match.lastgroup, match.group()
        if kind == "space":
            continue
        if kind == "num":
            tokens.append(NUMBER)
            values.append(int(text))
            continue
        token = {"indent": INDENT, "newline": NEWLINE}.get(kind, text)
        if token not in TOKEN_IDS:
            raise ValueError(f"token {text!r} of program {source!r} is not in the vocabulary")
        tokens.append(token)
        values.append(None)
    if pos != len(source):
        raise ValueError(f"cannot tokenize {source[pos:]!r} in program {source!r}")
    return tokens, values
