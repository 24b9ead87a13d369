"""Print what each objective's exact optimum is, against theory, on a tabular problem with a known p(w | c).

    python scripts/theory_table.py [--contexts 4] [--words 4] [--seed 0] [--output FILE]

No sampling anywhere: every expected loss is an exact sum (:mod:`nce_lm.objectives.theory`; the (k + 1)-way objectives
enumerate every multiset of k negatives, 23,426 of them for k = 50 and V = 4, which is why V is small), and
each is minimised over a free score table by L-BFGS in float64 to a gradient of 1e-7. For each objective, each
noise q ∝ p(w)^α (α = 1 the unigram, i.e. the marginal; 0.75; 0 uniform) and k ∈ {1, 5, 50} it prints

* ``error vs optimum``: max |ŝ − s*| against the optimum theory states (one constant per context removed for
  ranking and InfoNCE, whose optimum is defined up to it) — zero up to the solver's tolerance when the theory
  is right, as it is for every row but ranking with accidental hits removed;
* ``distance from log p``: the same against log p(w | c) (up to the constant for ranking/InfoNCE), i.e. how
  far exp(s) is from the probability the model is meant to give;
* for the (k + 1)-way objectives, log(k + 1) − L at the optimum next to the true mutual information I(w; c):
  a lower bound when q is the marginal (α = 1) and every negative is kept, and not one otherwise.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from nce_lm.fileio import write_text_atomic
from nce_lm.objectives.losses import build_objective
from nce_lm.objectives.theory import minimise, mutual_information, optimum_error, random_problem, theoretical_optimum
from nce_lm.pipeline.noise import NoiseDistribution

POWERS = (1.0, 0.75, 0.0)
KS = (1, 5, 50)
ROWS = (  # (label, objective name, options)
    ("full", "full", {}),
    ("nce", "nce", {}),
    ("neg", "neg", {}),
    ("ranking", "ranking", {}),
    ("ranking, hits removed", "ranking", {"remove_accidental_hits": True}),
    ("infonce", "infonce", {}),
)


def bound_verdict(power: float, options: dict, exceeds: bool) -> str:
    """Whether log(k + 1) − L is a bound on I here, and whether it happens to exceed I."""
    if power == 1.0 and not options.get("remove_accidental_hits"):
        return "yes (q = marginal)"
    why = "hits removed" if options.get("remove_accidental_hits") else "q ≠ marginal"
    return f"no ({why}; {'exceeds I' if exceeds else 'below I here'})"


def table(contexts: int, words: int, seed: int) -> str:
    problem = random_problem(contexts, words, seed=seed)
    info = mutual_information(problem)
    lines = [
        f"tabular problem: {contexts} contexts × {words} words, seed {seed}; I(w; c) = {info:.4f} nats",
        "",
        "| objective | noise α | k | error vs optimum | distance from log p | log(k+1) − L | bound valid? |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, name, options in ROWS:
        for power in POWERS:
            log_q = problem.noise(power)
            for k in (1,) if name == "full" else KS:
                if name == "full":
                    objective = build_objective("full", None, 0)
                else:
                    objective = build_objective(name, NoiseDistribution(problem.marginal, power), k, **options)
                scores, loss = minimise(objective, problem, log_q)
                target, up_to_constant = theoretical_optimum(name, problem, log_q, k)
                error = optimum_error(name, scores, target, up_to_constant)
                distance = optimum_error(name, scores, problem.log_p, name in ("ranking", "infonce"))
                bound, valid = "", ""
                if name in ("ranking", "infonce"):
                    bound = f"{math.log(k + 1) - loss:.4f}"
                    valid = bound_verdict(power, options, math.log(k + 1) - loss > info)
                noise = "—" if name == "full" else f"{power:g}"
                k_text = "—" if name == "full" else str(k)
                lines.append(f"| {label} | {noise} | {k_text} | {error:.1e} | {distance:.3f} | {bound} | {valid} |")
            if name == "full":
                break
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contexts", type=int, default=4)
    parser.add_argument("--words", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="also write the table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they give
    text = table(args.contexts, args.words, args.seed)
    sys.stdout.write(text)
    if args.output:
        write_text_atomic(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
