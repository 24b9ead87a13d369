"""``nce-lm lm train``, ``eval``, ``score`` and ``sample``: language models trained with any objective, evaluated
exactly, then used to score sentences and to generate text."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from nce_lm.cli.inputs import check_corpus, check_data
from nce_lm.cli.options import (
    LM_LEARNING_RATE,
    SEED,
    add_replace_errors,
    checkpoint_every,
    device_name,
    error_mode,
    integer,
    number,
)
from nce_lm.cli.resume_command import resume_command
from nce_lm.clobber import check_outputs
from nce_lm.errors import NceLmError
from nce_lm.fileio import read_json, write_json_atomic, write_text_atomic
from nce_lm.lm import LMConfig, evaluate_lm, train_lm
from nce_lm.lm.checkpoint import check_new_run_folder
from nce_lm.lm.config import DEFAULT_NOISE_POWER, DEFAULT_NOISE_SAMPLES, MODELS
from nce_lm.lm.language_model import CHECKPOINTS, LanguageModel
from nce_lm.lm.optim import DEFAULT_LR, DEFAULT_TABLE_LR, LM_OPTIMIZERS, ROWWISE_TABLE_LR_SCALE
from nce_lm.objectives.losses import OBJECTIVES
from nce_lm.objectives.mi_bound import bound_line
from nce_lm.pipeline.corpus import iter_chunks
from nce_lm.pipeline.datasets import REGISTRY
from nce_lm.pipeline.vocab import Vocab
from nce_lm.training.devices import PRECISIONS
from nce_lm.training.preemption import Stopped

_D = LMConfig()


def print_evaluation(metrics: dict[str, Any], what: str) -> None:
    """An exact evaluation in words: perplexity, then how self-normalized the scores are."""
    print(f"{what}: perplexity {metrics['ppl']:.2f} over {metrics['tokens']:,} tokens (exact softmax)")
    print(
        f"  self-normalization: log Z {metrics['mean_log_z']:+.3f} ± {metrics['std_log_z']:.3f} on average; "
        f"trusting exp(score) as a probability gives perplexity {metrics['self_normalized_ppl']:.2f}"
    )
    if metrics.get("is_log_z_error") is not None:
        print(f"  importance-sampled log Z: mean absolute error {metrics['is_log_z_error']:.4f}")


def run_train(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if k in LMConfig.__dataclass_fields__ and v is not None}
    if args.data:
        if args.train:
            raise NceLmError("give --data (a dataset or a folder of splits) or --train FILE, not both")
        given["train"] = args.data
    check_data(args.data, "--cache")
    check_corpus([args.train], "--cache")
    run_files = (
        [Path(args.resume) / name for name in ("config.json", "vocab.json", "last.pt", "best.pt")]
        if args.resume
        else []
    )
    inputs = [args.train, args.valid, args.test, args.vocab, args.cache, *run_files]
    check_outputs(inputs, files={"--metrics": args.metrics}, folders={"-o": args.output})
    if args.resume:
        run_dir = Path(args.resume)
        saved = LMConfig.from_dict(read_json(run_dir / "config.json", "run config"))
        if "epochs" in given and "max_tokens" not in given and saved.max_tokens is not None:
            given["max_tokens"] = None
            print(
                f"note: --epochs without --max-tokens lifts the run's cap of {saved.max_tokens:,} tokens: training "
                f"goes on to the end of epoch {given['epochs']}",
                flush=True,
            )
        config = replace(saved, **given)  # train_lm refuses the changes a resumed run may not make
    else:
        if not args.output:
            raise NceLmError("give -o RUN_DIR for a new run, or --resume RUN_DIR")
        config = LMConfig(**given)
        run_dir = Path(args.output)
        check_new_run_folder("-o", run_dir)
    vocab = Vocab.load(args.vocab) if args.vocab else None
    try:
        metrics = train_lm(
            config,
            run_dir,
            resume=bool(args.resume),
            vocab=vocab,
            cache_dir=args.cache,
            errors=error_mode(args),
            log_every=args.log_every,
            valid_tokens=args.valid_tokens,
            final_test=args.final_test,
            checkpoint_every=args.checkpoint_every,
        )
    except Stopped as stop:  # SIGTERM or SIGINT, at a step boundary: last.pt continues it
        if stop.saved is not None:
            stop.resume_command = resume_command(args.argv, ("-o", "--output", "--resume"), stop.saved)
        raise
    if metrics["rank"] != 0:  # under torchrun, rank 0 reports and writes
        return 0
    if metrics.get("test"):
        print_evaluation(metrics["test"], "test (best model)")
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
    if metrics.get("test_skipped"):
        print("test pass skipped (--no-test): `nce-lm lm eval RUN_DIR --data TEST` scores best.pt later")
    best = min((h["valid"]["ppl"] for h in metrics["history"]), default=float("nan"))
    limited = metrics.get("valid_limited_to")
    scope = f" on the first {limited['tokens']:,} of {limited['of']:,} tokens" if limited else ""
    print(
        f"wrote {run_dir}: config.json, vocab.json, last.pt (for --resume), best.pt (valid ppl {best:.2f}{scope}), "
        f"log.jsonl, metrics.json" + (f"; and {args.metrics}" if args.metrics else "")
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    check_outputs([args.run_dir, args.data], files={"--metrics": args.metrics, "--plot": args.plot})
    log_z: list | None = None
    if args.plot:
        from nce_lm.lm.plots import check_figure_path

        check_figure_path(args.plot)  # before the evaluation, not after it
        log_z = []
    metrics = evaluate_lm(
        args.run_dir, args.data, device=args.device, progress=args.progress, errors=error_mode(args), log_z_sink=log_z
    )
    print_evaluation(metrics, f"{args.run_dir} on {args.data}")
    print(f"  {bound_line(metrics)}")
    if args.metrics:
        write_json_atomic(args.metrics, metrics)
        print(f"wrote {args.metrics}")
    if args.plot:
        import torch

        from nce_lm.lm.plots import plot_log_z_histogram

        title = f"log Z(c) of {Path(args.run_dir).resolve().name} on {Path(args.data).name}"
        plot_log_z_histogram(torch.cat(log_z).numpy(), args.plot, title)
        print(f"wrote {args.plot}")
    return 0


def _file_sentences(path: str, model: LanguageModel, errors: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of each non-blank line of ``path``, tokenized as the run's vocabulary says."""
    sentences, tokens, number = [], [], 0
    for chunk in iter_chunks([path], model.vocab.tokenizer, errors):
        tokens += chunk.tokens
        if chunk.line_end:
            number += 1
            if tokens:
                sentences.append((number, tokens))
            tokens = []
    if not sentences:
        raise NceLmError(f"no sentences in {path}: every line is blank")
    return sentences


def _score_record(place: dict[str, Any], log_prob: float, tokens: int) -> dict[str, Any]:
    """One JSON line of ``lm score``: where, tokens scored (<eos> included), summed log-prob, perplexity."""
    return {**place, "tokens": tokens, "log_prob": log_prob, "ppl": math.exp(-log_prob / tokens)}


def run_score(args: argparse.Namespace) -> int:
    check_outputs([args.run_dir, *args.files], files={"-o": args.output})
    model = LanguageModel.load(args.run_dir, args.checkpoint, device=args.device)
    normalize = "self" if args.self_normalized else "exact"
    if normalize == "self" and not model.self_normalized:
        print(
            f"warning: {args.run_dir} was trained with {model.config.objective}, not nce: its log Z is free, so "
            "self-normalized scores are not log-probabilities",
            file=sys.stderr,
            flush=True,
        )
    places, sentences = [], []
    for path in args.files:
        for line, tokens in _file_sentences(path, model, error_mode(args)):
            places.append({"file": path, "line": line, "unk": sum(t not in model.vocab for t in tokens)})
            sentences.append(tokens)
    scores = model.log_probs(sentences, normalize)
    records = [_score_record(p, float(s.sum()), len(s)) for p, s in zip(places, scores)]
    total_tokens, total_log_prob = sum(len(s) for s in scores), sum(r["log_prob"] for r in records)
    total = _score_record({"total": True, "sentences": len(records)}, total_log_prob, total_tokens)
    total["normalize"] = normalize
    how = "self-normalized: exp(score) taken as p" if args.self_normalized else "exact softmax"
    if args.output:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [*records, total])
        write_text_atomic(args.output, text)
    else:
        for r in records:
            print(f"{r['file']}:{r['line']}\ttokens {r['tokens']}\tlog-prob {r['log_prob']:.4f}\tppl {r['ppl']:.2f}")
    print(
        f"total: {len(records):,} sentences, {total_tokens:,} tokens, log-prob {total_log_prob:.4f}, "
        f"perplexity {total['ppl']:.4f} ({how})" + (f"; wrote {args.output}" if args.output else "")
    )
    return 0


def run_sample(args: argparse.Namespace) -> int:
    check_outputs([args.run_dir])
    model = LanguageModel.load(args.run_dir, args.checkpoint, device=args.device)
    text = model.generate(args.prompt, args.tokens, args.temperature, args.top_k, args.seed)
    prompt = " ".join(model.tokenize(args.prompt))
    print(f"{prompt} {text}" if prompt and not text.startswith("\n") else prompt + text)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    lm = subparsers.add_parser(
        "lm",
        description="Train a language model (LSTM or Transformer) with NCE or any other "
        "objective, and evaluate it with the exact softmax.",
    )
    verbs = lm.add_subparsers(dest="lm_verb", metavar="ACTION", required=True)

    train = verbs.add_parser(
        "train",
        help="train a language model",
        description="Train on --train (validating on --valid each epoch), on a registered "
        "dataset or on a folder of splits (--data). Writes config.json, vocab.json, last.pt, "
        "best.pt, metrics.json and log.jsonl (a record every few steps) in RUN_DIR. Under torchrun, trains "
        "data-parallel.",
    )
    train.add_argument(
        "--data",
        help="a registered dataset (" + ", ".join(REGISTRY) + ") or a folder holding "
        "train/valid/test files (an `nce-lm synth` output, NAME.train.txt...): its splits",
    )
    train.add_argument("--train", help="training text")
    train.add_argument("--valid", help="validation text")
    train.add_argument("--test", help="test text, evaluated with the best model at the end")
    train.add_argument("-o", "--output", help="run folder to create")
    train.add_argument(
        "--resume",
        help="continue the run in this folder with its settings; only --epochs, "
        "--max-tokens, --lr, --device and --precision may change (--log-every, --valid-tokens and --no-test apply to "
        "each call). A run stopped by --max-tokens "
        "continues its epoch when --max-tokens is raised; --epochs alone lifts the cap",
    )
    train.add_argument("--vocab", help="a vocabulary from `nce-lm vocab` (default: the training text's, every word)")
    train.add_argument(
        "--cache",
        help="a token cache from `nce-lm prepare` of the training text (its vocabulary is "
        "used unless --vocab is given)",
    )
    add_replace_errors(train)
    train.add_argument("--objective", choices=tuple(OBJECTIVES), help=f"training objective (default {_D.objective})")
    train.add_argument("--model", choices=MODELS, help=f"default {_D.model}")
    train.add_argument(
        "--noise-samples", dest="noise_samples", type=integer(1), help=f"k (default min({DEFAULT_NOISE_SAMPLES}, V))"
    )
    train.add_argument(
        "--noise-power",
        dest="noise_power",
        type=number(0, 1),
        help=f"α of q ∝ count^α (default {DEFAULT_NOISE_POWER:g} for nce and ranking, 1 for the others)",
    )
    train.add_argument("--layers", type=integer(1), help=f"default {_D.layers}")
    train.add_argument("--dim", type=integer(1), help=f"default {_D.dim}")
    train.add_argument("--heads", type=integer(1), help=f"transformer heads (default {_D.heads})")
    train.add_argument("--dropout", type=number(0, 1), help=f"default {_D.dropout}")
    train.add_argument("--tie-weights", dest="tie_weights", action="store_true", default=None)
    train.add_argument("--seq-len", dest="seq_len", type=integer(1), help=f"default {_D.seq_len}")
    train.add_argument(
        "--batch-size", dest="batch_size", type=integer(1), help=f"global batch (default {_D.batch_size})"
    )
    train.add_argument("--epochs", type=integer(1), help=f"default {_D.epochs}")
    train.add_argument("--max-tokens", dest="max_tokens", type=integer(1), help="stop after this many training tokens")
    train.add_argument(
        "--checkpoint-every",
        dest="checkpoint_every",
        type=checkpoint_every,
        metavar="DURATION|STEPS",
        help="also write last.pt inside epochs: every DURATION of training (30m, 600s, 2h) or every STEPS optimizer "
        "steps; SIGTERM and SIGINT write it too (docs/reliability.md). --resume continues the epoch exactly",
    )
    train.add_argument(
        "--optimizer",
        choices=LM_OPTIMIZERS,
        help="default adam-rowwise, for every objective and V: Adam for the network, row-wise Adagrad for the "
        "embedding tables (docs/lm.md)",
    )
    train.add_argument(
        "--lr", type=LM_LEARNING_RATE, help="default: " + ", ".join(f"{v:g} ({k})" for k, v in DEFAULT_LR.items())
    )
    train.add_argument(
        "--table-lr",
        dest="table_lr",
        type=LM_LEARNING_RATE,
        help="adam-rowwise: the embedding tables' starting rate, decayed with --lr (default: --lr x "
        f"{ROWWISE_TABLE_LR_SCALE:.4g}, {DEFAULT_TABLE_LR:g} at the default rate)",
    )
    train.add_argument("--lr-decay", dest="lr_decay", type=number(1), help=f"default {_D.lr_decay}")
    train.add_argument("--clip", type=number(0, above=True), help=f"default {_D.clip}")
    train.add_argument(
        "--device", type=device_name, help=f"auto, cpu, cuda or cuda:N (default {_D.device}: cuda when visible)"
    )
    train.add_argument(
        "--precision",
        choices=PRECISIONS,
        help=f"fp32 or bf16 autocast (default {_D.precision}: bf16 on CUDA, fp32 on the CPU)",
    )
    train.add_argument("--seed", type=SEED, help=f"default {_D.seed}")
    train.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    train.add_argument("--metrics", help="also write the metrics JSON here")
    train.add_argument(
        "--log-every",
        dest="log_every",
        type=integer(1),
        help="steps between training records (step, tokens, loss, lr, tokens/s) in RUN_DIR/log.jsonl, which also "
        "gets every validation (default: an epoch's steps / 100)",
    )
    train.add_argument(
        "--valid-tokens",
        dest="valid_tokens",
        type=integer(1),
        help="validate on the first N tokens of the validation text only (default: all); best.pt and the "
        "learning-rate decay then follow that partial figure",
    )
    train.add_argument(
        "--no-test",
        dest="final_test",
        action="store_false",
        help="skip the test pass of best.pt at the end (`lm eval` can score it later)",
    )
    train.set_defaults(func=run_train)

    evaluate = verbs.add_parser(
        "eval",
        help="exact perplexity and self-normalization of a trained model",
        description="Evaluate RUN_DIR's best model on --data (a text file, or a dataset "
        "name for its test split): ppl, mean_log_z, std_log_z, self_normalized_ppl, "
        "is_log_z_error, info_nce_loss, mi_bound (log(k + 1) - info_nce_loss, a lower bound "
        "on the mutual information only with --noise-power 1: see mi_bound_valid), tokens.",
    )
    evaluate.add_argument("run_dir")
    evaluate.add_argument(
        "--data", required=True, help="a text file, or a dataset name or folder of splits (its test split)"
    )
    add_replace_errors(evaluate)
    evaluate.add_argument("--device", type=device_name, help="override the run's device")
    evaluate.add_argument("--metrics", help="also write the figures as JSON here")
    evaluate.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar")
    evaluate.add_argument(
        "--plot", help="also draw a histogram of log Z(c) over the text to this figure (.png, .pdf, .svg...)"
    )
    evaluate.set_defaults(func=run_eval)
    _register_score(verbs)
    _register_sample(verbs)


def _register_score(verbs: argparse._SubParsersAction) -> None:
    score = verbs.add_parser(
        "score",
        help="log-probability and perplexity of each sentence of text files",
        description="Score every non-blank line of FILE... as one sentence (tokenized as the run's vocabulary was, "
        "unknown words as <unk>, <eos> scored at its end) with RUN_DIR's model: tokens, summed log-probability "
        "and perplexity per sentence, and a total line. Exact (softmax over the vocabulary) unless "
        "--self-normalized.",
    )
    score.add_argument("run_dir")
    score.add_argument("files", nargs="+", metavar="FILE")
    score.add_argument(
        "--self-normalized",
        action="store_true",
        help="take exp(score) as the probability, without log Z: O(d) per token instead of O(V d); a "
        "log-probability only for a model trained with nce (Mnih & Teh 2012; Devlin et al. 2014)",
    )
    score.add_argument("--checkpoint", choices=CHECKPOINTS, default="best", help="the model to use (default best)")
    score.add_argument("-o", "--output", help="write one JSON line per sentence and a total line here instead")
    score.add_argument("--device", type=device_name, help="override the run's device")
    add_replace_errors(score)
    score.set_defaults(func=run_score)


def _register_sample(verbs: argparse._SubParsersAction) -> None:
    sample = verbs.add_parser(
        "sample",
        help="generate text from a trained model",
        description="Continue --prompt (a sentence's beginning; default: a new sentence) with TOKENS sampled "
        "tokens from RUN_DIR's model, each line break an <eos>. The same --seed gives the same text.",
    )
    sample.add_argument("run_dir")
    sample.add_argument("--prompt", default="", help="the text to continue (default: none)")
    sample.add_argument("-n", "--tokens", type=integer(1), default=50, help="tokens to sample (default 50)")
    sample.add_argument("--temperature", type=number(0, above=True), default=1.0, help="divides the scores (default 1)")
    sample.add_argument("--top-k", dest="top_k", type=integer(1), help="sample among the K most probable words only")
    sample.add_argument("--seed", type=SEED, default=0, help="default 0")
    sample.add_argument("--checkpoint", choices=CHECKPOINTS, default="best", help="the model to use (default best)")
    sample.add_argument("--device", type=device_name, help="override the run's device")
    sample.set_defaults(func=run_sample)
