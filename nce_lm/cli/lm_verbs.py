"""``nce-lm lm train`` and ``nce-lm lm eval``: language models trained with any objective, evaluated exactly."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nce_lm.cli.options import SEED, device_name, integer, number
from nce_lm.clobber import check_outputs
from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json, write_json_atomic
from nce_lm.lm import LMConfig, evaluate_lm, train_lm
from nce_lm.devices import PRECISIONS
from nce_lm.lm.config import DEFAULT_NOISE_SAMPLES, MODELS
from nce_lm.lm.optim import DEFAULT_LR, OPTIMIZERS
from nce_lm.mi_bound import bound_line
from nce_lm.objectives import OBJECTIVES

_D = LMConfig()
# Options a resumed run may set; the rest come from the run folder.
_RESUME_OPTIONS = ("epochs", "max_tokens", "device", "precision")


def run_train(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if k in LMConfig.__dataclass_fields__ and v is not None}
    if args.data:
        given["train"] = args.data
    run_files = [Path(args.resume) / name for name in ("config.json", "vocab.json", "last.pt", "best.pt")] \
        if args.resume else []
    inputs = [args.train, args.valid, args.test, *run_files]
    check_outputs(inputs, files={"--metrics": args.metrics}, folders={"-o": args.output})
    if args.resume:
        run_dir = Path(args.resume)
        saved = LMConfig.from_dict(read_json(run_dir / "config.json", "run config"))
        extra = sorted(k for k in given if k not in _RESUME_OPTIONS and k != "progress" and given[k] != getattr(saved, k))
        if extra:
            raise NceLmError(f"--resume continues the run as configured; only {', '.join(_RESUME_OPTIONS)} may "
                             f"change (got {', '.join(extra)})")
        config = saved.with_changes(**{k: given[k] for k in _RESUME_OPTIONS if k in given}, progress=given["progress"])
    else:
        if not args.output:
            raise NceLmError("give -o RUN_DIR for a new run, or --resume RUN_DIR")
        config = LMConfig(**given)
        run_dir = Path(args.output)
    metrics = train_lm(config, run_dir, resume=bool(args.resume))
    if metrics.get("test"):
        test = metrics["test"]
        print(f"test: ppl {test['ppl']:.2f}, self-normalized ppl {test['self_normalized_ppl']:.2f}, "
              f"mean log Z {test['mean_log_z']:+.3f} ± {test['std_log_z']:.3f}")
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    check_outputs([args.run_dir, args.data], files={"--metrics": args.metrics})
    metrics = evaluate_lm(args.run_dir, args.data, device=args.device, progress=args.progress)
    print(json.dumps(metrics, indent=2))
    print(bound_line(metrics), file=sys.stderr)  # stdout stays one JSON document
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    lm = subparsers.add_parser("lm", help="language models: train with any objective, evaluate exactly",
                               description="Train a language model (LSTM or Transformer) with NCE or any other "
                               "objective, and evaluate it with the exact softmax.")
    verbs = lm.add_subparsers(dest="lm_verb", metavar="ACTION", required=True)

    train = verbs.add_parser("train", help="train a language model",
                             description="Train on --train (validating on --valid each epoch) or on a named dataset "
                             "(--data ptb|wikitext-2). Writes config.json, vocab.json, last.pt, best.pt and "
                             "metrics.json in RUN_DIR. Under torchrun, trains data-parallel.")
    train.add_argument("--data", help="a registered dataset (ptb, wikitext-2): its train/valid/test splits")
    train.add_argument("--train", help="training text")
    train.add_argument("--valid", help="validation text")
    train.add_argument("--test", help="test text, evaluated with the best model at the end")
    train.add_argument("-o", "--output", help="run folder to create")
    train.add_argument("--resume", help="continue the run in this folder (optionally with more --epochs)")
    train.add_argument("--objective", choices=tuple(OBJECTIVES), help=f"training objective (default {_D.objective})")
    train.add_argument("--model", choices=MODELS, help=f"default {_D.model}")
    train.add_argument("--noise-samples", dest="noise_samples", type=integer(1), help=f"k (default min({DEFAULT_NOISE_SAMPLES}, V))")
    train.add_argument("--noise-power", dest="noise_power", type=number(0, 1), help=f"default {_D.noise_power}")
    train.add_argument("--layers", type=integer(1), help=f"default {_D.layers}")
    train.add_argument("--dim", type=integer(1), help=f"default {_D.dim}")
    train.add_argument("--heads", type=integer(1), help=f"transformer heads (default {_D.heads})")
    train.add_argument("--dropout", type=number(0, 1), help=f"default {_D.dropout}")
    train.add_argument("--tie-weights", dest="tie_weights", action="store_true", default=None)
    train.add_argument("--seq-len", dest="seq_len", type=integer(1), help=f"default {_D.seq_len}")
    train.add_argument("--batch-size", dest="batch_size", type=integer(1), help=f"global batch (default {_D.batch_size})")
    train.add_argument("--epochs", type=integer(1), help=f"default {_D.epochs}")
    train.add_argument("--max-tokens", dest="max_tokens", type=integer(1), help="stop after this many training tokens")
    train.add_argument("--optimizer", choices=OPTIMIZERS,
                       help="default adam; rowwise-adagrad for a sampled objective at V >= 100,000 (docs/lm.md)")
    train.add_argument("--lr", type=number(0, above=True), help="default: " + ", ".join(f"{v:g} ({k})" for k, v in DEFAULT_LR.items()))
    train.add_argument("--lr-decay", dest="lr_decay", type=number(1), help=f"default {_D.lr_decay}")
    train.add_argument("--clip", type=number(0, above=True), help=f"default {_D.clip}")
    train.add_argument("--device", type=device_name, help=f"auto, cpu, cuda or cuda:N (default {_D.device}: cuda when visible)")
    train.add_argument("--precision", choices=PRECISIONS,
                       help=f"fp32 or bf16 autocast (default {_D.precision}: bf16 on CUDA, fp32 on the CPU)")
    train.add_argument("--seed", type=SEED, help=f"default {_D.seed}")
    train.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    train.add_argument("--metrics", help="also write the metrics JSON here")
    train.set_defaults(func=run_train)

    evaluate = verbs.add_parser("eval", help="exact perplexity and self-normalization of a trained model",
                                description="Evaluate RUN_DIR's best model on --data (a text file, or a dataset "
                                "name for its test split): ppl, mean_log_z, std_log_z, self_normalized_ppl, "
                                "is_log_z_error, info_nce_loss, mi_bound (log(k + 1) - info_nce_loss, a lower bound "
                                "on the mutual information only with --noise-power 1: see mi_bound_valid), tokens.")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data", required=True, help="text file or dataset name")
    evaluate.add_argument("--device", type=device_name, help="override the run's device")
    evaluate.add_argument("--metrics", help="also write the figures as JSON here")
    evaluate.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    evaluate.set_defaults(func=run_eval)
