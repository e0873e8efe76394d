"""What ``symgen show`` prints: a problem's loss and derivative formulas.

Formats: ``text`` (SymPy's plain notation, the one you would type back),
``latex``, and ``markdown`` (a table with LaTeX math). ``program`` lists the
CSE'd statements that the generated ``loss_and_grad`` runs. With ``hessian``,
the second derivatives follow (``codegen.formulas.hessians``), and ``program``
lists those of ``hessian`` too (of ``hvp``, when the Hessian is computed from it).
"""

from __future__ import annotations

import sympy as sp
from sympy import MatrixSymbol

from symgen.backends.numpy.module import plan
from symgen.codegen.formulas import directions, formula_latex, formula_text, gradients, hessians
from symgen.compiler.pipeline import run
from symgen.compiler.problem import Problem

FORMATS = ("text", "latex", "markdown")


def _loss_name(problem: Problem) -> str:
    return "ℓ" if problem.kind == "per_sample" else "L"


def _intro(problem: Problem) -> str:
    if problem.kind == "matrix":
        symbols = (*problem.params, *problem.data)
        matrices = [f"{s.name} {tuple(s.shape)}" for s in symbols if isinstance(s, MatrixSymbol)]
        scalars = [s.name for s in symbols if not isinstance(s, MatrixSymbol)]
        parts = [f"matrices: {', '.join(matrices)}"]
        if scalars:
            parts.append(f"scalars: {', '.join(scalars)}")
        return "; ".join(parts) + "; ⊙ is the elementwise product."
    if not problem.data:
        return ""
    data = ", ".join(d.name for d in problem.data)
    how = "sum" if problem.reduce == "sum" else "mean"
    return f"L is the {how} over samples of ℓ; data {data} are 1-D arrays of N samples."


def _applied(problem: Problem, q, formula) -> str:
    """`` · v_q`` after a block that ``hessians`` gives applied to the direction v_q (a
    block of matrix parameters)."""
    if problem.kind == "matrix" and formula.has(v := directions(problem)[q]):
        return f" · {v.name}"
    return ""


def _second(name: str, p, q) -> str:
    return f"∂²{name}/∂{p.name}²" if p == q else f"∂²{name}/∂{p.name}∂{q.name}"


def _second_latex(name: str, p, q) -> str:
    if p == q:
        return rf"\frac{{\partial^2 {name}}}{{\partial {sp.latex(p)}^2}}"
    return rf"\frac{{\partial^2 {name}}}{{\partial {sp.latex(p)} \partial {sp.latex(q)}}}"


def text(problem: Problem, hessian: bool = False) -> str:
    name = _loss_name(problem)
    lines = [f"# {problem.name}"]
    if problem.written != problem.loss:  # index notation: what it was read as follows
        lines.append(f"# written: {sp.sstr(problem.written)}")
    if problem.data:
        lines.append(f"# {_intro(problem)}")
    lines.append(f"{name} = {formula_text(problem, problem.loss)}")
    for p, d in gradients(problem).items():
        lines.append(f"∂{name}/∂{p.name} = {formula_text(problem, d)}")
    if hessian:
        for (p, q), d in hessians(problem).items():
            applied = _applied(problem, q, d)
            lines.append(f"{_second(name, p, q)}{applied} = {formula_text(problem, d)}")
    return "\n".join(lines)


def latex(problem: Problem, hessian: bool = False) -> str:
    name = r"\ell" if problem.kind == "per_sample" else "L"
    intro = _intro(problem)
    lines = [f"% {problem.name}" + (f": {intro}" if intro else "")]
    lines.append(f"{name} = {formula_latex(problem, problem.loss)}")
    for p, d in gradients(problem).items():
        partial = rf"\frac{{\partial {name}}}{{\partial {sp.latex(p)}}}"
        lines.append(f"{partial} = {formula_latex(problem, d)}")
    if hessian:
        for (p, q), d in hessians(problem).items():
            applied = _applied(problem, q, d).replace(" · ", r" \cdot ")
            lines.append(f"{_second_latex(name, p, q)}{applied} = {formula_latex(problem, d)}")
    return "\n".join(lines)


def markdown(problem: Problem, hessian: bool = False) -> str:
    name = r"\ell" if problem.kind == "per_sample" else "L"
    lines = [f"### {problem.name}", ""]
    if problem.data:
        lines += [_intro(problem), ""]
    lines += [f"${name} = {formula_latex(problem, problem.loss)}$", ""]
    lines += ["| parameter | derivative |", "| --- | --- |"]
    for p, d in gradients(problem).items():
        partial = rf"\frac{{\partial {name}}}{{\partial {sp.latex(p)}}}"
        lines.append(f"| `{p.name}` | ${partial} = {formula_latex(problem, d)}$ |")
    if hessian:
        for (p, q), d in hessians(problem).items():
            applied = _applied(problem, q, d).replace(" · ", r" \cdot ")
            second = f"{_second_latex(name, p, q)}{applied}"
            lines.append(f"| `{p.name}`, `{q.name}` | ${second} = {formula_latex(problem, d)}$ |")
    return "\n".join(lines)


def _statements(title: str, body) -> list[str]:
    lines = [title]
    for comment, stmts in body.groups:
        lines.append(f"# {comment}")
        lines.extend(stmts)
    return lines


def program(problem: Problem, hessian: bool = False) -> str:
    """The statements of ``loss_and_grad``, kernel by kernel; with ``hessian``, then those
    of ``hessian`` (or, when the Hessian comes from hvps along unit vectors, of ``hvp``)."""
    module = plan(run(problem), None)
    body = module.grad_body
    lines = _statements(f"# {problem.name}: loss_and_grad", body)
    grads = ", ".join(body.results[1:]) + ("," if len(body.results) == 2 else "")
    lines.append(f"return {body.results[0]}, ({grads})")
    if hessian:
        second = module.second
        if second.hessian_body is not None:
            lines += ["", *_statements(f"# {problem.name}: hessian", second.hessian_body)]
            lines += second.assembly
            lines.append("return _hessian")
        else:
            what = f"# {problem.name}: hvp (hessian calls it along each unit vector)"
            lines += ["", *_statements(what, second.hvp_body)]
            results = ", ".join(second.hvp_body.results)
            lines.append(f"return ({results},)")
    return "\n".join(lines)


def render(problem: Problem, fmt: str = "text", hessian: bool = False) -> str:
    return {"text": text, "latex": latex, "markdown": markdown}[fmt](problem, hessian)
