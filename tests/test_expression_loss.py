"""The expression loss: the formula language (every operator, precedence, errors with positions), gradients
on p in [0, 1], and the shipped formulas against direct implementations."""

import math

import pytest
import torch
import torch.nn.functional as F

from sfda.config import load_config
from sfda.errors import ConfigError
from sfda.losses import build_loss
from sfda.losses.expression import FORMULAS, ExpressionLoss
from sfda.losses.expression_grammar import BINARY, EPS, EXTRA_UNARY, UNARY, FormulaError, evaluate, parse, to_text
from sfda.registry import LOSSES

# Independent references for the 27 + 7 NeuroLoss operators (and cos), written from the reference sheet.
UNARY_REF = {
    "neg": lambda x: -x,
    "log": lambda x: torch.log(x.abs() + 1e-7),
    "log10": lambda x: torch.log(x.abs() + 1e-7) / math.log(10),
    "exp": torch.exp,
    "abs": torch.abs,
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "inv1p_abs": lambda x: 1 / (1 + x.abs()),
    "softplus": lambda x: torch.log((1 + torch.exp(x)).abs() + 1e-7),
    "erf": torch.erf,
    "erfc": lambda x: 1 - torch.erf(x),
    "sin": torch.sin,
    "sinh": torch.sinh,
    "asinh": lambda x: torch.log(x + torch.sqrt(x * x + 1)),
    "tanh": torch.tanh,
    "atan": torch.atan,
    "inv": lambda x: 1 / (x + 1e-7),
    "i0": torch.special.i0,
    "i0e": lambda x: torch.special.i0(x) * torch.exp(-x.abs()),
    "i1": torch.special.i1,
    "i1e": lambda x: torch.special.i1(x) * torch.exp(-x.abs()),
    "max0": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "min0": lambda x: torch.where(x < 0, x, torch.zeros_like(x)),
    "square": lambda x: x * x,
    "sqrt_abs": lambda x: x.abs() ** 0.5,
    "softsign": lambda x: x / (1 + x.abs()),
    "sech2": lambda x: 1 / torch.cosh(x) ** 2,
    "dsigmoid": lambda x: torch.exp(-x) / (1 + torch.exp(-x)) ** 2,
    "cos": torch.cos,
}
BINARY_REF = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "max": lambda a, b: torch.where(a > b, a, b),
    "min": lambda a, b: torch.where(a < b, a, b),
    "div": lambda a, b: a / (b + 1e-7),
    "div_hypot": lambda a, b: a / torch.sqrt(1 + b * b),
}


def _inputs(n=6, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(torch.randn(n, k, generator=g) * 2, dim=1)
    y = F.one_hot(torch.randint(0, k, (n,), generator=g), k).float()
    return {"p": p, "y": y, "K": torch.tensor(float(k))}


def test_the_operator_set_is_the_neuroloss_one():
    assert len(UNARY) == 27 and len(BINARY) == 7 and set(EXTRA_UNARY) == {"cos"}
    assert set(UNARY) | set(EXTRA_UNARY) == set(UNARY_REF) and set(BINARY) == set(BINARY_REF)
    assert EPS == 1e-7


@pytest.mark.parametrize("name", sorted(UNARY_REF))
def test_every_unary_operator_against_torch(name):
    inputs = _inputs()
    x = torch.linspace(-3, 3, 30).view(6, 5)  # negative, zero-free and positive arguments
    for arg, value in (("p", inputs["p"]), ("(3 * p - 1.5) * 2", (3 * inputs["p"] - 1.5) * 2)):
        got = evaluate(parse(f"{name}({arg})"), inputs)
        assert torch.allclose(got, UNARY_REF[name](value), rtol=1e-5, atol=1e-6), (name, arg)
    got = evaluate(parse(f"{name}(p)"), {**inputs, "p": x})
    assert got.dtype == torch.float32 and torch.allclose(got, UNARY_REF[name](x), rtol=1e-5, atol=1e-5), name


@pytest.mark.parametrize("name", sorted(BINARY_REF))
def test_every_binary_operator_against_torch(name):
    inputs = _inputs()
    a, b = inputs["p"] - 0.3, inputs["y"] - inputs["p"]
    got = evaluate(parse(f"{name}(p - 0.3, y - p)"), inputs)
    assert torch.allclose(got, BINARY_REF[name](a, b), rtol=1e-5, atol=1e-6), name


@pytest.mark.parametrize("infix,name", [("+", "add"), ("-", "sub"), ("*", "mul"), ("/", "div")])
def test_infix_operators_are_the_binary_ones(infix, name):
    inputs = _inputs()
    assert torch.equal(evaluate(parse(f"p {infix} y"), inputs), evaluate(parse(f"{name}(p, y)"), inputs))


@pytest.mark.parametrize(
    "formula,value",
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("2 - 3 - 4", -5.0),
        ("-2 * 3", -6.0),
        ("--2", 2.0),
        ("-exp(0) + 1", 0.0),
        ("2 * -3", -6.0),
        ("1e-1 * .5e1", 0.5),
        ("max(1, 2) - min(1, 2)", 1.0),
        ("ln(1)", 1e-7),
    ],
)
def test_precedence_and_associativity(formula, value):
    got = evaluate(parse(formula), _inputs())
    assert got.item() == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_division_is_protected_and_left_associative():
    assert evaluate(parse("8 / 2 / 2"), _inputs()).item() == pytest.approx(8 / (2 + 1e-7) / (2 + 1e-7), rel=1e-6)
    assert to_text(parse("8 / 2 / 2")) == "div(div(8, 2), 2)"
    assert to_text(parse("-p * y + 2 / 3")) == "add(mul(neg(p), y), div(2, 3))"
    assert to_text(parse("p - y * K")) == "sub(p, mul(y, K))"


@pytest.mark.parametrize(
    "formula,position,words",
    [
        ("exp(p", 6, "expected ')'"),
        ("expp(p)", 1, "unknown operator at position 1: 'expp' (did you mean 'exp'?)"),
        ("p +", 4, "syntax error"),
        ("2p", 2, "unexpected 'p'"),
        ("p * q", 5, "unknown variable"),
        ("max(p)", 1, "'max' takes 2, got 1"),
        ("exp(p, y)", 1, "'exp' takes 1, got 2"),
        ("p $ y", 3, "'$'"),
        ("", 1, "empty"),
        ("exp", 1, "needs its argument in parentheses"),
        ("(p))", 4, "unexpected ')'"),
        ("  log(p) + sin(y ,)", 19, "expected a number"),
    ],
)
def test_errors_name_the_position(formula, position, words):
    with pytest.raises(FormulaError) as e:
        parse(formula)
    assert e.value.position == position and words in str(e.value) and f"at position {position}" in str(e.value)


def test_a_bad_formula_stops_the_config_at_load_time_with_one_line():
    with pytest.raises(ConfigError) as e:
        load_config(
            "configs/digits/shot/mnist5k_uci.yaml",
            ['method.pl_loss={name: expression, formula: "exp(2.4 - p) + sinn(p)"}'],
        )
    msg = str(e.value)
    assert "\n" not in msg and "'method.pl_loss.formula'" in msg and "at position 16" in msg and "'sin'" in msg
    with pytest.raises(ConfigError, match="'method.loss.formula' syntax error at position 8"):
        load_config("configs/digits/source/mnist5k.yaml", ['method.loss={name: expression, formula: "p * y +"}'])
    cfg = load_config("configs/digits/shot/mnist5k_uci.yaml", ["method.pl_loss={name: expression, formula: baikal}"])
    assert cfg.method.pl_loss.formula == "baikal" and isinstance(build_loss(cfg.method.pl_loss, 10), ExpressionLoss)


GRID = torch.tensor([0.0, 1e-7, 1e-3, 0.25, 0.5, 0.75, 1 - 1e-3, 1.0])


@pytest.mark.parametrize("name", sorted(UNARY_REF) + sorted(BINARY_REF))
def test_gradients_are_finite_on_p_in_0_1(name):
    p = GRID.clone().requires_grad_(True)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    inputs = {"p": p, "y": y, "K": torch.tensor(2.0)}
    args = ["p", "y - p", "p - y"] if name in UNARY_REF else ["p, y", "y, p", "p, p - y"]
    for arg in args:
        out = evaluate(parse(f"{name}({arg})"), inputs)
        (grad,) = torch.autograd.grad(out.sum(), p)
        finite = torch.isfinite(grad)
        if name == "sqrt_abs":  # d sqrt|x| / dx is infinite where the argument is 0, as in the reference
            zero_arg = (evaluate(parse(arg), inputs) == 0).detach()
            assert finite[~zero_arg].all() and not finite[zero_arg].any(), arg
        else:
            assert finite.all() and torch.isfinite(out).all(), (name, arg)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_shipped_formulas_have_finite_gradients_for_extreme_logits(name):
    logits = torch.tensor([[60.0, -60.0, 0.0], [0.0, 0.0, 0.0], [-30.0, 30.0, 29.0]], requires_grad=True)
    loss = ExpressionLoss(3, formula=name)(logits, torch.tensor([0, 1, 0]))
    (grad,) = torch.autograd.grad(loss.sum(), logits)
    assert (
        loss.shape == (3,) and loss.dtype == torch.float32 and torch.isfinite(loss).all() and torch.isfinite(grad).all()
    )


def _logits(n=64, k=3, scale=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * scale, torch.randint(0, k, (n,), generator=g)


def test_ce_formula_equals_the_builtin_ce():
    logits, t = _logits()  # p >= 0.25: the formula's eps (1e-7 / p_y) stays under 1e-6
    got = ExpressionLoss(3, formula="ce")(logits, t)
    assert torch.allclose(got, LOSSES.get("ce")(3)(logits, t), atol=1e-6, rtol=0)
    wide, t2 = _logits(k=10, scale=4.0)  # any p: the formula is exactly -log(p_y + 1e-7)
    p_y = torch.softmax(wide, 1).gather(1, t2[:, None]).squeeze(1)
    assert torch.allclose(ExpressionLoss(10, formula="-y * log(p)")(wide, t2), -torch.log(p_y + 1e-7), atol=1e-6)
    smoothed = ExpressionLoss(3, formula="ce", label_smoothing=0.1)(logits, t)
    assert torch.allclose(smoothed, LOSSES.get("label_smoothing")(3, eps=0.1)(logits, t), atol=1e-6, rtol=0)


def test_ngl_formula_equals_the_builtin_ngl_both_reductions():
    for scale in (0.3, 3.0, 10.0):
        logits, t = _logits(k=10, scale=scale)
        for reduction in ("mean", "sum"):
            ngl = LOSSES.get("ngl")(10, class_reduction=reduction)(logits, t)
            got = ExpressionLoss(10, formula="ngl", class_reduction=reduction)(logits, t)
            assert torch.allclose(got, ngl, atol=1e-6 * (10 if reduction == "sum" else 1), rtol=1e-6)


def test_baikal_formula_equals_the_reference_baikal():
    for scale in (0.3, 3.0):
        logits, t = _logits(k=10, scale=scale)
        p = torch.softmax(logits, 1)
        onehot = F.one_hot(t, 10).float()
        reference = -(torch.log(p + 1e-7) - onehot / (p + 1e-7)).sum(dim=1)
        got = ExpressionLoss(10, formula="baikal")(logits, t)
        assert torch.allclose(got, reference, rtol=1e-6, atol=1e-6)


def test_flip_reduction_constants_and_K():
    logits, t = _logits(k=4)
    base = ExpressionLoss(4, formula="y * log(p)")(logits, t)
    assert torch.equal(ExpressionLoss(4, formula="y * log(p)", flip=True)(logits, t), -base)
    assert torch.allclose(ExpressionLoss(4, formula="2", class_reduction="sum")(logits, t), torch.full((64,), 8.0))
    assert torch.allclose(ExpressionLoss(4, formula="K * p", class_reduction="mean")(logits, t), torch.ones(64))
    with pytest.raises(ConfigError, match="'method.pl_loss.class_reduction' must be one of sum, mean"):
        ExpressionLoss(4, formula="p", class_reduction="max")


def test_expression_loss_trains_with_shot_through_the_config():
    cfg = load_config(
        "configs/digits/shot/mnist5k_uci.yaml",
        ['method.pl_loss={name: expression, formula: "exp(2.4092 - p * (1 + y)) - cos(cos(sin(p)))"}'],
    )
    loss = build_loss(cfg.method.pl_loss, 10)
    logits = torch.randn(8, 10, requires_grad=True)
    value = loss(logits, torch.arange(8)).mean()
    value.backward()
    assert torch.isfinite(logits.grad).all() and list(loss.parameters()) == []
