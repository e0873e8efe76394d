"""What ``symgen show`` prints: a problem's loss and derivative formulas.

Formats: ``text`` (SymPy's plain notation, the one you would type back),
``latex``, and ``markdown`` (a table with LaTeX math). ``program`` lists the
CSE'd statements that the generated ``loss_and_grad`` runs.
"""

from __future__ import annotations

import sympy as sp
from sympy import MatrixSymbol

from symgen.backends.numpy.module import plan
from symgen.codegen.formulas import formula_latex, formula_text, gradients
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


def text(problem: Problem) -> str:
    name = _loss_name(problem)
    lines = [f"# {problem.name}"]
    if problem.written != problem.loss:  # index notation: what it was read as follows
        lines.append(f"# written: {sp.sstr(problem.written)}")
    if problem.data:
        lines.append(f"# {_intro(problem)}")
    lines.append(f"{name} = {formula_text(problem, problem.loss)}")
    for p, d in gradients(problem).items():
        lines.append(f"∂{name}/∂{p.name} = {formula_text(problem, d)}")
    return "\n".join(lines)


def latex(problem: Problem) -> str:
    name = r"\ell" if problem.kind == "per_sample" else "L"
    intro = _intro(problem)
    lines = [f"% {problem.name}" + (f": {intro}" if intro else "")]
    lines.append(f"{name} = {formula_latex(problem, problem.loss)}")
    for p, d in gradients(problem).items():
        partial = rf"\frac{{\partial {name}}}{{\partial {sp.latex(p)}}}"
        lines.append(f"{partial} = {formula_latex(problem, d)}")
    return "\n".join(lines)


def markdown(problem: Problem) -> str:
    name = r"\ell" if problem.kind == "per_sample" else "L"
    lines = [f"### {problem.name}", ""]
    if problem.data:
        lines += [_intro(problem), ""]
    lines += [f"${name} = {formula_latex(problem, problem.loss)}$", ""]
    lines += ["| parameter | derivative |", "| --- | --- |"]
    for p, d in gradients(problem).items():
        partial = rf"\frac{{\partial {name}}}{{\partial {sp.latex(p)}}}"
        lines.append(f"| `{p.name}` | ${partial} = {formula_latex(problem, d)}$ |")
    return "\n".join(lines)


def program(problem: Problem) -> str:
    """The statements of ``loss_and_grad``, kernel by kernel."""
    body = plan(run(problem), None).grad_body
    lines = [f"# {problem.name}: loss_and_grad"]
    for comment, stmts in body.groups:
        lines.append(f"# {comment}")
        lines.extend(stmts)
    grads = ", ".join(body.results[1:]) + ("," if len(body.results) == 2 else "")
    lines.append(f"return {body.results[0]}, ({grads})")
    return "\n".join(lines)


def render(problem: Problem, fmt: str = "text") -> str:
    return {"text": text, "latex": latex, "markdown": markdown}[fmt](problem)
