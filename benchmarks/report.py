"""Render the results as Markdown and write ``BENCHMARKS.md``, keeping the hand-written notes."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .timing import Measurement, format_seconds

#: Everything from this line on in BENCHMARKS.md is written by people and kept on rewrite.
MARKER = "<!-- notes below are kept by the runner -->"


@dataclass
class WorkloadResult:
    title: str
    description: str
    measurements: list[Measurement]
    reference: str  # contender name
    symgen: str  # contender name

    def median_of(self, name: str) -> float:
        m = next(m for m in self.measurements if m.contender.name == name)
        return m.median if m.samples else math.nan

    def symgen_ratio(self) -> float:
        return self.median_of(self.symgen) / self.median_of(self.reference)

    def paired_ratio(self) -> float:
        """Median over rounds of symgen's sample over the reference's in the same round."""
        mine, ref = (
            next(m for m in self.measurements if m.contender.name == name).samples
            for name in (self.symgen, self.reference)
        )
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
        name = f"**{c.name}**" if c.name == result.symgen else c.name
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


#: Generation-time targets, seconds (from the issue: W3 under 2 s).
GENERATION_TARGETS = {"W3": 2.0}


def generation_section(times: dict[str, dict]) -> tuple[str, list[str]]:
    """``(heading, Markdown lines)`` for the ``symgen.generate`` timings of the child process."""
    lines = [
        "Wall time of `symgen.generate(problem)` (spec to NumPy module source), called "
        f"{len(next(iter(times.values()))['samples'])} times in a row in one fresh process "
        "after its imports; the first call also fills SymPy's caches.",
        "",
        "| workload | problem | median | first call | all calls | target |",
        "|---|---|---:|---:|---|---|",
    ]
    for key, entry in times.items():
        samples = entry["samples"]
        median = statistics.median(samples)
        target = GENERATION_TARGETS.get(key)
        verdict = "—"
        if target is not None:
            verdict = f"< {target:g} s: {'met' if median < target else 'MISSED'}"
        lines.append(
            f"| {key} | `{entry['problem']}` | {format_seconds(median)} "
            f"| {format_seconds(samples[0])} "
            f"| {', '.join(format_seconds(s) for s in samples)} | {verdict} |"
        )
    return "Generation time", lines


def render(
    header: list[tuple[str, list[str]]],
    results: list[WorkloadResult],
    sections: list[tuple[str, list[str]]] = (),
) -> str:
    """Header sections as lists, one section per workload, then ``sections`` as Markdown."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks` (`--quick` for a shorter run): everything above the "
        "marker line near the end is regenerated on every run; notes below it are kept.",
        "",
    ]
    for heading, items in header:
        lines += [f"## {heading}", ""] + [f"- {item}" for item in items] + [""]
    for result in results:
        lines += [f"## {result.title}", "", result.description, ""]
        lines += table(result)
        lines += ["", summary(result), ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", *body, ""]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Overwrite ``path`` with ``text``, then the marker and whatever followed it before."""
    kept = ""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        index = old.find(MARKER)
        if index >= 0:
            kept = old[index + len(MARKER) :].lstrip("\n")
    path.write_text(f"{text.rstrip()}\n\n{MARKER}\n\n{kept}".rstrip() + "\n", encoding="utf-8")
