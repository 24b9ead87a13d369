"""The Python API as a gensim user meets it: token lists in, KeyedVectors-like queries out, the README's code."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from nce_lm.errors import NceLmError
from nce_lm.skipgram.trainer import SkipGramConfig, train_skipgram
from nce_lm.vectors.word_vectors import WordVectors

README = Path(__file__).resolve().parent.parent / "README.md"
SMALL = SkipGramConfig(dim=8, epochs=2, min_count=1, threads=1)


class Reiterable:
    """A corpus read from a file each time it is iterated over, as gensim's ``LineSentence`` does."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self):
        with open(self.path) as handle:
            for line in handle:
                yield line.split()


def test_token_lists_train_exactly_what_the_same_text_file_trains(topic_corpus: Path) -> None:
    sentences = [line.split() for line in topic_corpus.read_text().splitlines()]
    from_file = train_skipgram(topic_corpus, SMALL, progress=False)
    from_lists = train_skipgram(sentences, SMALL, progress=False)
    from_stream = train_skipgram(Reiterable(topic_corpus), SMALL, progress=False)
    assert from_lists.vocab.fingerprint() == from_file.vocab.fingerprint()
    for result in (from_lists, from_stream):
        assert result.vectors.words == from_file.vectors.words
        np.testing.assert_array_equal(result.vectors.vectors, from_file.vectors.vectors)


def test_settings_can_be_given_as_keywords(topic_corpus: Path) -> None:
    sentences = [line.split() for line in topic_corpus.read_text().splitlines()]
    result = train_skipgram(sentences, dim=6, epochs=1, min_count=1, threads=1, progress=False)
    assert result.vectors.dim == 6 and result.metrics["epochs"] == 1


@pytest.mark.parametrize(
    ("corpus", "message"),
    [
        ((s for s in [["a", "b"]]), "one-shot iterator .generator."),
        (iter([["a", "b"]]), "one-shot iterator"),
        ([], "the corpus is empty"),
        ([["a", "b"], "c d"], "sentence 2 is a str, not a list of tokens"),
        (
            ["the cat sat", "on the mat"],
            r"'the cat sat' is not a file, and a sentence must be a list of tokens, such as \['the', 'cat', 's",
        ),
        ([["a", 3]], "holds a int .3.; tokens must be strings"),
        ([["a", "new york"]], "vocabulary token 'new york' is empty or holds whitespace: word2vec's files separate"),
        ([["a", ""]], "vocabulary token '' is empty or holds whitespace"),
        (42, "file paths or an iterable of token lists, not int"),
    ],
)
def test_bad_corpora_are_refused_with_a_reason(corpus, message: str) -> None:
    with pytest.raises(NceLmError, match=message):
        train_skipgram(corpus, SMALL, progress=False)


def test_token_lists_refuse_tokenizer_settings() -> None:
    with pytest.raises(NceLmError, match="token lists are used as given"):
        train_skipgram([["a", "b"]], SMALL, lowercase=True, progress=False)


@pytest.fixture
def vectors() -> WordVectors:
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    return WordVectors(words, rng.normal(size=(40, 6)).astype(np.float32), np.arange(40, 0, -1))


@pytest.fixture
def keyed(vectors: WordVectors) -> KeyedVectors:
    """The same arrays in a KeyedVectors built by gensim itself, independently of to_gensim()."""
    keyed = KeyedVectors(vector_size=6)
    keyed.add_vectors(vectors.words, vectors.vectors)
    return keyed


def test_queries_give_gensims_answers(vectors: WordVectors, keyed: KeyedVectors) -> None:
    assert vectors.most_similar("w3", topn=5) == keyed.most_similar("w3", topn=5)
    analogy = vectors.most_similar(positive=["w1", "w2"], negative=["w3"], topn=4)
    assert analogy == keyed.most_similar(positive=["w1", "w2"], negative=["w3"], topn=4)
    assert vectors.doesnt_match(["w1", "w2", "w3", "w4"]) == keyed.doesnt_match(["w1", "w2", "w3", "w4"])
    assert vectors.similarity("w5", "w9") == pytest.approx(float(keyed.similarity("w5", "w9")), abs=1e-7)


def test_queries_agree_with_closed_forms(vectors: WordVectors) -> None:
    a, b = vectors.vectors[5].astype(np.float64), vectors.vectors[9].astype(np.float64)
    assert vectors.similarity("w5", "w9") == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-6)
    unit = vectors.unit_vectors().astype(np.float64)
    cosines = unit @ unit[3]
    cosines[3] = -np.inf  # the query word itself is left out
    best = np.argsort(-cosines)[:5]
    found = vectors.most_similar("w3", topn=5)
    assert [w for w, _ in found] == [vectors.words[i] for i in best]
    np.testing.assert_allclose([s for _, s in found], cosines[best], atol=1e-6)


def test_indexing_and_membership(vectors: WordVectors) -> None:
    np.testing.assert_array_equal(vectors["w7"], vectors.vectors[7])
    np.testing.assert_array_equal(vectors[["w7", "w0"]], vectors.vectors[[7, 0]])
    assert "w7" in vectors and "nope" not in vectors and 0 not in vectors  # gensim alone takes 0 as row 0
    with pytest.raises(KeyError, match="'nope' is not in the vectors"):
        vectors["nope"]


def test_to_gensim_is_a_copy_with_counts(vectors: WordVectors) -> None:
    keyed = vectors.to_gensim()
    assert isinstance(keyed, KeyedVectors) and keyed.index_to_key == vectors.words
    np.testing.assert_array_equal(keyed.vectors, vectors.vectors)
    assert keyed.get_vecattr("w0", "count") == 40
    keyed.vectors[0] = 0
    assert vectors.vectors[0].any()


def test_the_package_exports_the_api_lazily() -> None:
    """``from nce_lm import ...`` gives the modules' own objects, and ``import nce_lm`` alone loads neither torch
    nor gensim (each name is imported at its first use)."""
    import subprocess
    import sys

    import nce_lm
    from nce_lm.lm.config import LMConfig
    from nce_lm.lm.train import train_lm
    from nce_lm.skipgram.config import SkipGramConfig as Config

    assert (nce_lm.train_skipgram, nce_lm.SkipGramConfig, nce_lm.WordVectors) == (train_skipgram, Config, WordVectors)
    assert (nce_lm.train_lm, nce_lm.LMConfig) == (train_lm, LMConfig)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        nce_lm.nothing  # noqa: B018
    code = "import sys, nce_lm; print(sorted(m for m in ('torch', 'gensim', 'numpy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_language_model_is_exported_from_its_module() -> None:
    """``LanguageModel`` comes from nce_lm.lm.language_model (its engineer's module): that class where it exists,
    else an ImportError naming the module, never another class of the same name."""
    import importlib
    import importlib.util

    import nce_lm

    if importlib.util.find_spec("nce_lm.lm.language_model") is None:
        with pytest.raises(AttributeError, match="needs nce_lm.lm.language_model, which this version does not have"):
            nce_lm.LanguageModel  # noqa: B018
    else:
        defined = importlib.import_module("nce_lm.lm.language_model").LanguageModel
        assert nce_lm.LanguageModel is defined


@pytest.fixture(scope="module")
def trained(topic_corpus: Path):
    return train_skipgram(topic_corpus, SMALL, progress=False)


def test_the_result_has_gensims_attributes(trained) -> None:
    wv = trained.wv
    assert wv is trained.vectors and isinstance(wv, WordVectors)
    assert wv.index_to_key == wv.words and wv.vectors.shape == (len(wv.index_to_key), SMALL.dim)
    assert wv.key_to_index == {word: i for i, word in enumerate(wv.index_to_key)}
    assert all(wv.index_to_key[wv.key_to_index[word]] == word for word in wv.index_to_key)
    keyed = wv.to_gensim()
    assert keyed.key_to_index == wv.key_to_index and keyed.index_to_key == wv.index_to_key


@pytest.mark.parametrize("format", ["word2vec-bin", "word2vec-txt", "gensim"])
def test_saved_vectors_reload_in_gensim_and_here(trained, tmp_path: Path, format: str) -> None:
    wv, path = trained.wv, tmp_path / f"vectors.{format}"
    wv.save(path, format=format)
    if format == "gensim":
        keyed = KeyedVectors.load(str(path))
    else:
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=format == "word2vec-bin")
    assert keyed.index_to_key == wv.index_to_key and keyed.key_to_index == wv.key_to_index
    np.testing.assert_array_equal(keyed.vectors, wv.vectors)
    loaded = WordVectors.load(path, trust_pickle=format == "gensim")
    assert loaded.index_to_key == wv.index_to_key
    np.testing.assert_array_equal(loaded.vectors, wv.vectors)


def test_save_word2vec_format_is_gensims(trained, tmp_path: Path) -> None:
    for binary in (True, False):
        path = tmp_path / f"v.{binary}"
        trained.wv.save_word2vec_format(path, binary=binary)
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert keyed.index_to_key == trained.wv.index_to_key
        np.testing.assert_array_equal(keyed.vectors, trained.wv.vectors)


def test_progress_false_prints_nothing(topic_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_skipgram(topic_corpus, SMALL, progress=False)
    assert capsys.readouterr() == ("", "")
    train_skipgram(topic_corpus, SMALL, progress=True)
    assert "epoch 2/2: mean loss per (context, centre) pair" in capsys.readouterr().out  # shown when asked for


def readme_python_blocks() -> list[tuple[str, str | None]]:
    """Each ```python block of the README with the ```text block right after it (its output as run), if any."""
    found = re.findall(r"```python\n(.*?)```\n(?:\n```text\n(.*?)```)?", README.read_text(), flags=re.S)
    return [(code, shown or None) for code, shown in found]


SPEED = re.compile(r"[\d,.]+ (?:tokens|words)/s")  # what the machine's load decides, not the code
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def same_output(printed: str, shown: str) -> bool:
    """The words of ``printed`` are ``shown``'s, and each number is within the rounding of the figure shown (plus
    0.1 %: BLAS sums in another order on another machine), speeds left out."""
    printed, shown = SPEED.sub("SPEED", printed), SPEED.sub("SPEED", shown)
    if NUMBER.sub("#", printed).split() != NUMBER.sub("#", shown).split():
        return False
    for got, want in zip(NUMBER.findall(printed), NUMBER.findall(shown)):
        digits = len(want.split(".")[1]) if "." in want else 0
        got, want = float(got.replace(",", "")), float(want.replace(",", ""))
        if abs(got - want) > 0.5 * 10**-digits + 1e-3 * abs(want):
            return False
    return True


def test_the_readme_has_python_examples_with_their_output() -> None:
    blocks = readme_python_blocks()
    assert len(blocks) >= 2 and all(shown is not None for _, shown in blocks)


def test_same_output_sees_a_changed_word_or_number() -> None:
    shown = "[('federal', 0.905)] epoch 1: valid ppl 50.86, 830 tokens/s"
    assert same_output("[('federal', 0.9054)] epoch 1: valid ppl 50.861, 1,234 tokens/s", shown)
    assert not same_output("[('interim', 0.905)] epoch 1: valid ppl 50.86, 830 tokens/s", shown)
    assert not same_output("[('federal', 0.912)] epoch 1: valid ppl 50.86, 830 tokens/s", shown)
    assert not same_output("[('federal', 0.905)] epoch 1: valid ppl 51.86, 830 tokens/s", shown)


@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_the_readme_python_examples_print_what_it_shows(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, shown = readme_python_blocks()[index]
    exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert shown is None or same_output(printed, shown), f"printed:\n{printed}\nthe README shows:\n{shown}"
