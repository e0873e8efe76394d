"""Render the results as Markdown and write ``BENCHMARKS.md``, keeping the hand-written notes."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .timing import Contender, Measurement, format_seconds

#: Everything from this line on in BENCHMARKS.md is written by people and kept on rewrite.
MARKER = "<!-- notes below are kept by the runner -->"


@dataclass
class WorkloadResult:
    title: str
    description: str
    measurements: list[Measurement]
    reference: str  # contender name
    symgen: str  # contender name
    key: str = ""
    #: Other symgen contenders (another spelling of the loss): (name, short label).
    other_symgen: tuple[tuple[str, str], ...] = ()
    symgen_label: str = ""  # the main symgen contender's, when there are others

    @classmethod
    def from_json(cls, data: dict) -> WorkloadResult:
        """From what a ``--measure`` child process wrote."""
        measurements = []
        for row in data["contenders"]:
            m = Measurement(Contender(row["name"], note=row["note"], missing=row["missing"]))
            if row["missing"] is None:
                m.number, m.samples, m.faults = row["number"], row["samples"], row["faults"]
            measurements.append(m)
        return cls(
            data["title"],
            data["description"],
            measurements,
            data["reference"],
            data["symgen"],
            data["key"],
            tuple(tuple(pair) for pair in data.get("other_symgen", ())),
            data.get("symgen_label", ""),
        )

    def symgen_rows(self) -> list[tuple[str, str]]:
        """(contender name, label) for symgen's contenders: "W2 large, cross-entropy spelling"."""
        mine = f"{self.short_title}, {self.symgen_label}" if self.symgen_label else self.short_title
        return [(self.symgen, mine)] + [
            (name, f"{self.short_title}, {label}") for name, label in self.other_symgen
        ]

    @property
    def short_title(self) -> str:
        """The title up to its dash and the sizes after it: "W3 large, SGD step"."""
        head, _, rest = self.title.partition(" — ")
        step = ", SGD step" if "SGD step" in rest else ""
        if head.startswith("W4"):
            return f"W4, N = {rest.partition('N = ')[2]}"
        if head in ("Hessian", "hvp"):  # the second order: what and at which size
            return f"{head}, {rest}"
        if head == "W2":
            return "W2 large"
        return head + step

    def ratio_of(self, name: str) -> float:
        return self.median_of(name) / self.median_of(self.reference)

    def median_of(self, name: str) -> float:
        m = next(m for m in self.measurements if m.contender.name == name)
        return m.median if m.samples else math.nan

    def symgen_ratio(self) -> float:
        return self.median_of(self.symgen) / self.median_of(self.reference)

    def paired_ratio(self, name: str | None = None) -> float:
        """Median over rounds of symgen's (or ``name``'s) sample over the reference's."""
        mine, ref = (
            next(m for m in self.measurements if m.contender.name == n).samples
            for n in (name or self.symgen, self.reference)
        )
        if not mine:  # a contender that did not run (not generated, not installed)
            return math.nan
        pairs = [a / b for a, b in zip(mine, ref, strict=True)]
        return statistics.median(pairs) if pairs else math.nan


def table(result: WorkloadResult) -> list[str]:
    ref = result.median_of(result.reference)
    mine = result.median_of(result.symgen)
    lines = [
        "| contender | median per call | ± (IQR/2) | ratio to reference | vs symgen"
        " | page faults / call | rounds × calls | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in result.measurements:
        c = m.contender
        if c.missing is not None:
            lines.append(f"| {c.name} | {c.missing} | — | — | — | — | — | not run |")
            continue
        mine_too = c.name in (result.symgen, *(name for name, _ in result.other_symgen))
        name = f"**{c.name}**" if mine_too else c.name
        ratio = "1.00 (reference)" if c.name == result.reference else f"{m.median / ref:.2f}×"
        versus = "—" if c.name == result.symgen else f"{m.median / mine:.2f}× slower"
        if c.name != result.symgen and m.median < mine:
            versus = f"{mine / m.median:.2f}× faster"
        lines.append(
            f"| {name} | {format_seconds(m.median)} | {m.spread:.1%} | {ratio} | {versus} "
            f"| {m.faults:,.0f} | {len(m.samples)} × {m.number:,} | {c.note} |"
        )
    return lines


def summary(result: WorkloadResult) -> str:
    ratio = result.symgen_ratio()
    speed = f"{1 / ratio:.2f}× as fast as" if ratio <= 1 else f"{ratio:.2f}× the time of"
    return (
        f"**symgen ratio: {ratio:.2f}** (median time per call relative to "
        f"{result.reference}; symgen is {speed} the reference; median of the per-round "
        f"ratios: {result.paired_ratio():.2f})"
    )


#: The issue's speed targets: symgen's median time over the reference's, at most; and a
#: label. The W3 large target is applied to its SGD step too.
TARGETS = {
    "w1": (1.3, "W1 step"),
    "w2-large": (1.0, "W2 large"),
    "w3-large": (0.97, "W3 large, loss and gradients"),
    "w3-large-step": (0.97, "W3 large, SGD step"),
    "w4-100000": (1.0, "W4, N = 10⁵"),
    "w4-10000000": (0.8, "W4, N = 10⁷"),
    "solve-w4": (0.5, "W4 time to solution, N = 10⁵"),
    "solve-w2": (0.5, "W2 large time to solution"),
    "huber-numpy-1000000": (1.2, "Huber as a Piecewise (NumPy), N = 10⁶"),
    "huber-c-1000000": (1.2, "Huber as a Piecewise (C backend), N = 10⁶"),
    # The second order (issue 19): the logistic Hessian at most 1.05x the expert's
    # X.T @ (s[:, None] * X), ahead of it (< 1) from D = 256; hvp at most 2.5x loss_and_grad.
    "hessian-logistic-16": (1.05, "logistic Hessian, D = 16"),
    "hessian-logistic-64": (1.05, "logistic Hessian, D = 64"),
    "hessian-logistic-256": (0.99, "logistic Hessian, D = 256"),
    "hessian-logistic-1024": (0.99, "logistic Hessian, D = 1024"),
    "hvp-w3-seed": (2.5, "hvp / loss_and_grad, W3 seed"),
    "hvp-w3-large": (2.5, "hvp / loss_and_grad, W3 large"),
    "hvp-w4-100000": (2.5, "hvp / loss_and_grad, W4, N = 10⁵"),
}


def is_peer(name: str) -> bool:
    """Another tool (autograd, JAX, PyTorch, PyTensor, SymPy), not symgen or hand-written."""
    return not name.startswith(("symgen", "hand-written"))


def _met(value: float, bound: float, strict: bool = False) -> str:
    if math.isnan(value):
        return "not measured"
    ok = value < bound if strict else value <= bound
    return "**met**" if ok else "**missed**"


def targets_section(
    results: list[WorkloadResult],
    generated: dict[str, float],
    memory_ratio: float,
    memory_target: float,
    memory_n: int,
) -> tuple[str, list[str]]:
    """The issue's targets against this run's measurements."""
    from .generation import TARGETS as GENERATION_TARGETS

    lines = speed_targets(results)
    for key, label in (("W3", "W3 generation"), ("family-50", "50-parameter generation")):
        bound = GENERATION_TARGETS[key]
        seconds = generated.get(key, math.nan)
        shown = "not measured" if math.isnan(seconds) else f"{format_seconds(seconds)} (first call)"
        lines.append(f"| {label} < {bound:g} s | — | {shown} | {_met(seconds, bound, True)} |")
    shown = "not measured" if math.isnan(memory_ratio) else f"{memory_ratio:.2f}×"
    lines.append(
        f"| W4 peak memory at N = {memory_n:,} < {memory_target:g}× the inputs | inputs t, y "
        f"| {shown} | {_met(memory_ratio, memory_target, True)} |"
    )
    return "Targets", lines


def speed_targets(results: list[WorkloadResult], measured_only: bool = False) -> list[str]:
    """The table of the speed targets (``measured_only``: the rows of ``results`` only)."""
    lines = [
        "The issue's targets, judged on this run (speed: ratio of medians, symgen / "
        "reference, in the same run; the median of the per-round ratios in parentheses).",
        "",
        "| target | reference | measured | verdict |",
        "|---|---|---:|---|",
    ]
    measured = {r.key: r for r in results}
    for key, (bound, title) in TARGETS.items():
        r = measured.get(key)
        if r is None:
            if not measured_only:
                lines.append(f"| {title} ≤ {bound:g}× | — | not measured in this run | — |")
            continue
        for name, label in r.symgen_rows():
            label = title + label.removeprefix(r.short_title)
            ratio = r.ratio_of(name)
            if math.isnan(ratio):
                lines.append(f"| {label} ≤ {bound:g}× | {r.reference} | not run | — |")
                continue
            lines.append(
                f"| {label} ≤ {bound:g}× | {r.reference} | {ratio:.2f}× "
                f"({r.paired_ratio(name):.2f}) | {_met(ratio, bound)} |"
            )
    return lines


def peers_section(results: list[WorkloadResult]) -> tuple[str, list[str]]:
    """symgen against the fastest other tool, per workload."""
    lines = [
        "symgen against the fastest other tool on each workload (autograd, JAX, PyTorch eager "
        "and `torch.compile`, PyTensor, SymPy `lambdify`; hand-written code is not a peer). "
        "Ahead means a smaller median time in the same run.",
        "",
        "| workload | symgen | fastest peer | its time | symgen / fastest peer | ahead of every "
        "peer? |",
        "|---|---:|---|---:|---:|---|",
    ]
    for r in results:
        peers = [m for m in r.measurements if m.samples and is_peer(m.contender.name)]
        for name, label in r.symgen_rows():
            mine = r.median_of(name)
            if math.isnan(mine):
                lines.append(f"| {label} | not run | — | — | — | — |")
                continue
            if not peers:
                lines.append(f"| {label} | {format_seconds(mine)} | none ran | — | — | — |")
                continue
            best = min(peers, key=lambda m: m.median)
            lines.append(
                f"| {label} | {format_seconds(mine)} | {best.contender.name} "
                f"| {format_seconds(best.median)} | {mine / best.median:.2f}× "
                f"| {'yes' if mine < best.median else '**no**'} |"
            )
    return "symgen against its peers", lines


def render(
    header: list[tuple[str, list[str]]],
    sections: list[tuple[str, list[str]]],
    results: list[WorkloadResult],
    tail: list[tuple[str, list[str]]] = (),
) -> str:
    """Header sections as lists; ``sections`` (Markdown), one per workload, then ``tail``."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks` (`--quick` for a shorter run): everything above the "
        "marker line near the end is regenerated on every run; notes below it are kept.",
        "",
    ]
    for heading, items in header:
        lines += [f"## {heading}", ""] + [f"- {item}" for item in items] + [""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *body, ""]
    for result in results:
        lines += [f"## {result.title}", "", result.description, ""]
        lines += table(result)
        lines += ["", summary(result), ""]
    for heading, body in tail:
        lines += [f"## {heading}", "", *body, ""]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Overwrite ``path`` with ``text``, then the marker and whatever followed it before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = ""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        index = old.find(MARKER)
        if index >= 0:
            kept = old[index + len(MARKER) :].lstrip("\n")
    path.write_text(f"{text.rstrip()}\n\n{MARKER}\n\n{kept}".rstrip() + "\n", encoding="utf-8")
