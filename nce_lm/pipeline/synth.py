"""Corpora drawn from a known teacher language model, so that the best achievable perplexity is known.

PTB's 10,000 words are too few to show why NCE exists, and a million-word corpus with a known answer is
hard to come by, so we make one. The teacher is a class-bigram mixture over V words named ``w0`` … (id
order = frequency order):

    u(w) ∝ (w + 1)^(−s)                                     a Zipf unigram (s = 1.1 by default)
    g(c) = (a · (c mod C) + b) mod C                        the class that follows a word of class c mod C
    p*(w | prev) = (1 − ε) · [λ · u(w) 1{w ≡ g(prev)} / U_{g(prev)} + (1 − λ) · u(w)]   for a word w,
    p*(<eos> | prev) = ε,

with U_g = Σ_{w ≡ g mod C} u(w) and ε = 1 / mean line length; a line starts as if after a word of class 0.
Every token's probability is exact and costs O(1), and sampling costs O(1) per token (alias tables per
class, :mod:`nce_lm.pipeline.noise`), so corpora of 10⁸ tokens over 10⁶ words are cheap, on a GPU when one is there.
A student must learn which class follows which — an embedding can — to go below the unigram's entropy.

The floor: the teacher's cross-entropy on the test split, H = −(1/N) Σ_t log p*(x_t | x_{t−1}) over every
test token including the end-of-line tokens (which the language model predicts as ``<eos>``), summed in
float64. No model can expect a test perplexity below exp(H) (Gibbs' inequality, up to sampling noise).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from nce_lm.clobber import check_output_folder
from nce_lm.errors import NceLmError
from nce_lm.fileio import atomic_path, read_json, staged_folder, write_json_atomic
from nce_lm.pipeline.noise import build_alias_table
from nce_lm.training.devices import resolve_device

SPLITS = (("train", 0.90), ("valid", 0.95), ("test", 1.0))  # cumulative share of the tokens
_LINES_PER_CHUNK = 65_536
TEACHER_FILE = "teacher.json"
# The largest s·ln V: the rarest word's weight V^-s = e^(-s ln V) stays a normal float64 (the smallest is e^-708).
MAX_LOG_RARITY = 700.0


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher's settings; defaults make a learnable corpus whose floor is well below the unigram's."""

    vocab: int = 10_000  # V words
    classes: int = 64  # C word classes (w mod C)
    mix: float = 0.9  # λ: weight of the class-conditional part
    zipf: float = 1.1  # s: the unigram exponent
    mean_line: float = 20.0  # mean tokens per line, <eos> included (ε = 1 / mean_line)
    seed: int = 1

    def validate(self) -> None:
        if not 2 <= self.vocab <= 50_000_000:
            raise NceLmError(f"vocab must be between 2 and 50,000,000, got {self.vocab}")
        if not 1 <= self.classes <= self.vocab:
            raise NceLmError(f"classes must be between 1 and vocab, got {self.classes}")
        if not 0 <= self.mix <= 1:
            raise NceLmError(f"mix must be in [0, 1], got {self.mix}")
        if not 0 <= self.zipf < math.inf:
            raise NceLmError(f"zipf must be finite and non-negative, got {self.zipf}")
        if self.zipf * math.log(self.vocab) > MAX_LOG_RARITY:
            most = math.floor(MAX_LOG_RARITY / math.log(self.vocab) * 1000) / 1000
            raise NceLmError(
                f"zipf {self.zipf:g} makes the rarest of {self.vocab:,} words {self.vocab:,}^-{self.zipf:g} times as "
                f"likely as the first, below what float64 holds: at most {most:g} with this vocab"
            )
        if not 1 < self.mean_line < math.inf:
            raise NceLmError(f"mean_line must be finite and exceed 1, got {self.mean_line}")


class Teacher:
    """Exact probabilities and O(1) sampling of the class-bigram mixture, on one torch device."""

    def __init__(self, config: TeacherConfig, device: torch.device | str = "cpu") -> None:
        config.validate()
        self.config = config
        self.device = torch.device(device)
        vocab, classes = config.vocab, config.classes
        unigram = np.power(np.arange(1, vocab + 1, dtype=np.float64), -config.zipf)
        unigram /= unigram.sum()
        per_class = -(-vocab // classes)  # words per class, rounded up; class g holds g, g + C, g + 2C, ...
        padded = np.zeros(classes * per_class)
        padded[:vocab] = unigram
        table = padded.reshape(per_class, classes).T  # (C, M): table[g, i] = u(g + i·C)
        self.class_mass = table.sum(axis=1)  # (C,) U_g
        rng = np.random.default_rng(config.seed)
        a = int(rng.integers(1, classes + 1)) | 1
        while math.gcd(a, classes) != 1:
            a += 2
        self.successor = (a * np.arange(classes) + int(rng.integers(0, classes))) % classes  # (C,) g(c)
        self.unigram = torch.from_numpy(unigram).to(self.device)  # (V,) float64
        self.end = 1.0 / config.mean_line
        accept, alias = build_alias_table(unigram)
        self._accept = torch.from_numpy(accept).to(self.device)
        self._alias = torch.from_numpy(alias).to(self.device)
        class_accept, class_alias = zip(*(build_alias_table(row / row.sum()) for row in table))
        self._class_accept = torch.from_numpy(np.stack(class_accept)).to(self.device)  # (C, M)
        self._class_alias = torch.from_numpy(np.stack(class_alias)).to(self.device)  # (C, M)
        self._successor = torch.from_numpy(self.successor).to(self.device)
        self._class_mass = torch.from_numpy(self.class_mass).to(self.device)
        self._per_class = per_class

    def next_class(self, previous: torch.Tensor) -> torch.Tensor:
        """g(prev mod C) for word ids (…,); the line start behaves like class 0."""
        return self._successor[previous % self.config.classes]

    def log_prob(self, previous: torch.Tensor, word: torch.Tensor) -> torch.Tensor:
        """log p*(word | previous) in float64 for word ids; ``word = -1`` stands for <eos>."""
        is_end = word < 0
        w = word.clamp(min=0)
        target = self.next_class(previous)
        in_class = (w % self.config.classes) == target
        u = self.unigram[w]
        mixed = self.config.mix * u * in_class / self._class_mass[target] + (1 - self.config.mix) * u
        return torch.where(is_end, torch.full_like(u, math.log(self.end)), math.log1p(-self.end) + torch.log(mixed))

    def sample_next(self, previous: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One token after each of ``previous`` (S,): a word id, or -1 for <eos>."""
        size = previous.shape
        target = self.next_class(previous)
        column = torch.randint(self._per_class, size, device=self.device, generator=generator)
        coin = torch.rand(size, device=self.device, generator=generator, dtype=torch.float64)
        in_class = torch.where(coin < self._class_accept[target, column], column, self._class_alias[target, column])
        class_word = target + in_class * self.config.classes
        column = torch.randint(self.config.vocab, size, device=self.device, generator=generator)
        coin = torch.rand(size, device=self.device, generator=generator, dtype=torch.float64)
        unigram_word = torch.where(coin < self._accept[column], column, self._alias[column])
        pick = torch.rand(size, device=self.device, generator=generator, dtype=torch.float64)
        word = torch.where(pick < self.config.mix, class_word, unigram_word)
        end = torch.rand(size, device=self.device, generator=generator, dtype=torch.float64) < self.end
        return torch.where(end, torch.full_like(word, -1), word)

    def sample_lines(self, count: int, generator: torch.Generator) -> tuple[list[np.ndarray], np.ndarray]:
        """``count`` lines of word ids (without <eos>) and each line's log-probability, <eos> included."""
        previous = torch.zeros(count, dtype=torch.int64, device=self.device)  # class 0 starts a line
        active = torch.ones(count, dtype=torch.bool, device=self.device)
        log_prob = torch.zeros(count, dtype=torch.float64, device=self.device)
        steps = []
        while bool(active.any()):
            token = self.sample_next(previous, generator)
            log_prob += torch.where(active, self.log_prob(previous, token), torch.zeros_like(log_prob))
            token = torch.where(active, token, torch.full_like(token, -2))  # -2: the line had ended
            steps.append(token.cpu())
            active &= token >= 0
            previous = token.clamp(min=0)
        grid = torch.stack(steps, dim=1).numpy()  # (count, longest + 1)
        lengths = (grid >= 0).sum(axis=1)
        return [grid[i, : lengths[i]] for i in range(count)], log_prob.cpu().numpy()

    def unigram_entropy(self) -> float:
        """Entropy (nats) of a model that knows only the unigram and the line ends: a ceiling to beat."""
        u = self.unigram.cpu().numpy()
        e = self.end
        return float(-(e * math.log(e) + (1 - e) * (math.log(1 - e) + (u * np.log(u)).sum())))


def _write_lines(handle: TextIO, lines: list[np.ndarray], names: np.ndarray) -> None:
    handle.write("".join(" ".join(names[line]) + "\n" for line in lines))


def _is_synth_output(folder: Path) -> bool:
    """Whether ``folder``'s teacher.json is one that :func:`write_corpus` wrote."""
    try:
        report = read_json(folder / TEACHER_FILE, "teacher")
    except NceLmError:
        return False
    return isinstance(report, dict) and {"teacher", "test_floor_ppl"} <= report.keys()


def write_corpus(
    output: str | os.PathLike[str],
    tokens: int,
    teacher_config: TeacherConfig,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Sample about ``tokens`` tokens (<eos> included) into OUTPUT/{train,valid,test}.txt and teacher.json.

    Lines go to train until 90 % of the tokens, then valid until 95 %, then test. Returns the teacher.json
    contents: the floor (``test_cross_entropy`` in nats per token, ``test_floor_ppl``), the counts, settings.
    The four files are written into a temporary sibling of OUTPUT and moved there together once all are
    complete and checked: a failure leaves OUTPUT as it was. An OUTPUT holding other files than an earlier
    output of this function is refused (:func:`nce_lm.clobber.check_output_folder`).
    """
    if tokens < 100:
        raise NceLmError(f"tokens must be at least 100, got {tokens}")
    resolve_device(device)  # a bad name or an absent GPU, before any file is created
    teacher_config.validate()
    names = [*(f"{name}.txt" for name, _ in SPLITS), TEACHER_FILE]
    check_output_folder("-o", output, "synth", names, _is_synth_output)
    with staged_folder(output) as staging:
        return _write_corpus(staging, tokens, teacher_config, device, progress)


def _write_corpus(
    folder: Path, tokens: int, teacher_config: TeacherConfig, device: str, progress: bool
) -> dict[str, Any]:
    """:func:`write_corpus` into the (staging) folder ``folder``."""
    teacher = Teacher(teacher_config, device)
    generator = torch.Generator(device=teacher.device).manual_seed(teacher_config.seed)
    names = np.array([f"w{i}" for i in range(teacher_config.vocab)], dtype=object)
    counts = {name: 0 for name, _ in SPLITS}
    lines_per_split = {name: 0 for name, _ in SPLITS}
    test_log_prob = 0.0
    written = 0
    split_index = 0
    from contextlib import ExitStack

    from tqdm import tqdm

    with ExitStack() as stack:
        temporaries = {name: stack.enter_context(atomic_path(folder / f"{name}.txt")) for name, _ in SPLITS}
        handles = {name: stack.enter_context(open(path, "w", encoding="utf-8")) for name, path in temporaries.items()}
        bar = stack.enter_context(tqdm(total=tokens, unit="tok", unit_scale=True, disable=not progress, desc="synth"))
        while written < tokens:
            wanted = int((tokens - written) / teacher_config.mean_line * 1.05) + 16
            lines, log_probs = teacher.sample_lines(min(_LINES_PER_CHUNK, wanted), generator)
            batch: list[np.ndarray] = []
            for line, log_prob in zip(lines, log_probs):
                while split_index < len(SPLITS) - 1 and written >= SPLITS[split_index][1] * tokens:
                    _write_lines(handles[SPLITS[split_index][0]], batch, names)
                    batch = []
                    split_index += 1
                if written >= tokens:
                    break
                name = SPLITS[split_index][0]
                batch.append(line)
                counts[name] += len(line) + 1
                lines_per_split[name] += 1
                written += len(line) + 1
                if name == "test":
                    test_log_prob += float(log_prob)
            _write_lines(handles[SPLITS[split_index][0]], batch, names)
            bar.update(min(written, tokens) - bar.n)
        for handle in handles.values():
            handle.close()
    if counts["test"] == 0 or counts["valid"] == 0:
        raise NceLmError(f"{tokens} tokens are too few to fill the validation and test splits")
    cross_entropy = -test_log_prob / counts["test"]
    if not math.isfinite(cross_entropy):
        raise NceLmError(f"the teacher's test cross-entropy came out {cross_entropy}: these settings have no floor")
    report = {
        "teacher": asdict(teacher_config),
        "tokens": counts,
        "lines": lines_per_split,
        "test_cross_entropy": cross_entropy,
        "test_floor_ppl": math.exp(cross_entropy),
        "unigram_ppl": math.exp(teacher.unigram_entropy()),
        "note": "test_floor_ppl is the teacher's own perplexity on test.txt, <eos> included: "
        "the lowest a model can expect",
    }
    write_json_atomic(folder / TEACHER_FILE, report)
    return report
