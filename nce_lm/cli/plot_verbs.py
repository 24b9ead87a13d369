"""``nce-lm plot``: the training curves of one or several language-model runs in one figure."""

from __future__ import annotations

import argparse

from nce_lm.clobber import check_outputs
from nce_lm.lm.run_log import LOG_FILE, read_curves


def run_plot(args: argparse.Namespace) -> int:
    check_outputs(args.runs, files={"-o": args.output})
    runs = [read_curves(run) for run in args.runs]  # every run read before matplotlib is asked for
    from nce_lm.lm.plots import check_figure_path, plot_curves

    check_figure_path(args.output)
    plot_curves(runs, args.output)
    sources = ", ".join(f"{run.name} ({run.source})" for run in runs)
    print(f"wrote {args.output}: {sources}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    plot = subparsers.add_parser(
        "plot",
        help="draw the training curves of language-model runs (needs matplotlib: pip install 'nce_lm[plot]')",
        description="Draw validation perplexity (exact), the training loss and the mean ± std of log Z(c) on "
        f"validation against training tokens, one colour per RUN_DIR, from each run's {LOG_FILE} (a per-step log) "
        "or else its metrics.json (one point per epoch). Needs matplotlib: pip install 'nce_lm[plot]'.",
    )
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", required=True, help="the figure to write (.png, .pdf, .svg...)")
    plot.set_defaults(func=run_plot)
