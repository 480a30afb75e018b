"""Text features: tokenising and stop-word removal, bag of words and n-grams (scikit-learn's
CountVectorizer), orthogonal sparse bigrams, tf-idf with the textbook definition (or
scikit-learn's), and cartesian products of categorical or text columns.

Tokens are runs of word characters (``(?u)\\b\\w+\\b``, so one-letter words such as "a"
count; scikit-learn's default drops them), lower-cased unless ``lowercase=False``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from openmaker.processing.transforms._base import BOOLEAN, NUMERIC, STRING, FrameTransformer

TOKEN_PATTERN = r"(?u)\b\w+\b"


def _stop_word_set(stop_words: str | Sequence[str] | None) -> frozenset[str]:
    if stop_words is None:
        return frozenset()
    if isinstance(stop_words, str):
        if stop_words != "english":
            raise ValueError(f"stop_words={stop_words!r}: use 'english' or a list of words")
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        return frozenset(ENGLISH_STOP_WORDS)
    return frozenset(word.lower() for word in stop_words)


class WordAnalyzer:
    """A document -> its tokens (lower-cased, stop words removed) -> its terms: the n-grams
    for n in ``ngram_range``, or the orthogonal sparse bigrams of ``osb_window``. A class,
    not a closure, so fitted vectorizers pickle."""

    def __init__(self, lowercase: bool = True, token_pattern: str = TOKEN_PATTERN,
                 stop_words: str | Sequence[str] | None = None,
                 ngram_range: tuple[int, int] = (1, 1), osb_window: int | None = None) -> None:
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.stop_words = stop_words
        self.ngram_range = tuple(ngram_range)
        self.osb_window = osb_window
        self._pattern = re.compile(token_pattern)
        self._stop = _stop_word_set(stop_words)

    def tokens(self, document: Any) -> list[str]:
        if document is None or (isinstance(document, float) and np.isnan(document)):
            return []
        text = str(document)
        if self.lowercase:
            text = text.lower()
        words = self._pattern.findall(text)
        if self._stop:
            words = [word for word in words if word.lower() not in self._stop]
        return words

    def __call__(self, document: Any) -> list[str]:
        words = self.tokens(document)
        if self.osb_window is not None:
            return osb_terms(words, self.osb_window)
        low, high = self.ngram_range
        terms: list[str] = []
        for n in range(low, high + 1):
            terms.extend(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
        return terms

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_pattern"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pattern = re.compile(self.token_pattern)


def osb_terms(words: Sequence[str], window: int) -> list[str]:
    """Orthogonal sparse bigrams: for each word, the pairs with each of the next
    ``window - 1`` words, named ``first`` + ``_`` * distance + ``second``, so
    "the quick brown fox" with window 4 gives the_quick, the__brown, the___fox,
    quick_brown, quick__fox, brown_fox (the naming of Amazon Machine Learning's OSB)."""
    terms = []
    for i, first in enumerate(words):
        for distance in range(1, window):
            if i + distance >= len(words):
                break
            terms.append(first + "_" * distance + words[i + distance])
    return terms


def _check_ngram_range(transform: str, ngram_range: Any) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in ngram_range)
    except (TypeError, ValueError):
        raise ValueError(f"{transform}: ngram_range={ngram_range!r} must be a pair "
                         "(min_n, max_n)") from None
    if not 1 <= low <= high:
        raise ValueError(f"{transform}: ngram_range={ngram_range!r} needs 1 <= min_n <= max_n")
    return low, high


class Tokenizer(FrameTransformer):
    """Each text column's documents as their tokens joined by single spaces (``output=
    'text'``, ready for a vectorizer) or as lists of tokens (``output='list'``), with
    ``stop_words`` ('english' or a list) removed."""

    accepted_kinds = (STRING,)

    def __init__(self, lowercase: bool = True, token_pattern: str = TOKEN_PATTERN,
                 stop_words: str | Sequence[str] | None = None, output: str = "text",
                 columns: list[str] | None = None) -> None:
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.stop_words = stop_words
        self.output = output
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        if self.output not in ("text", "list"):
            raise ValueError(f"{type(self).__name__}: output={self.output!r} is not one of "
                             "'text', 'list'")
        self.analyzer_ = WordAnalyzer(self.lowercase, self.token_pattern, self.stop_words)

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame:
        result = {}
        for name in data.columns:
            tokens = [self.analyzer_.tokens(document) for document in data[name]]
            if self.output == "text":
                result[name] = [" ".join(words) for words in tokens]
            else:
                result[name] = tokens
        return pd.DataFrame(result, index=data.index)


class StopWordRemover(Tokenizer):
    """A Tokenizer that removes English stop words (scikit-learn's list) by default."""

    def __init__(self, stop_words: str | Sequence[str] | None = "english",
                 lowercase: bool = True, token_pattern: str = TOKEN_PATTERN,
                 output: str = "text", columns: list[str] | None = None) -> None:
        super().__init__(lowercase=lowercase, token_pattern=token_pattern,
                         stop_words=stop_words, output=output, columns=columns)


class CountVectorizer(FrameTransformer):
    """Bag of words / n-grams: per text column, one count column per term of its fitted
    vocabulary, named ``<column>_<term>`` (an n-gram's words joined by spaces), terms in
    sorted order. ``min_df``/``max_df`` (counts or fractions of documents) and
    ``max_features`` (the most frequent) prune the vocabulary; ``binary`` gives 0/1."""

    accepted_kinds = (STRING,)

    def __init__(self, ngram_range: tuple[int, int] = (1, 1), lowercase: bool = True,
                 token_pattern: str = TOKEN_PATTERN,
                 stop_words: str | Sequence[str] | None = None, min_df: int | float = 1,
                 max_df: int | float = 1.0, max_features: int | None = None,
                 binary: bool = False, columns: list[str] | None = None) -> None:
        self.ngram_range = ngram_range
        self.lowercase = lowercase
        self.token_pattern = token_pattern
        self.stop_words = stop_words
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.binary = binary
        self.columns = columns

    def _analyzer(self) -> WordAnalyzer:
        return WordAnalyzer(self.lowercase, self.token_pattern, self.stop_words,
                            _check_ngram_range(type(self).__name__, self.ngram_range))

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        from sklearn.feature_extraction.text import CountVectorizer as SklearnCountVectorizer

        analyzer = self._analyzer()
        self.vectorizers_ = {}
        for name in data.columns:
            vectorizer = SklearnCountVectorizer(
                analyzer=analyzer, token_pattern=None, min_df=self.min_df, max_df=self.max_df,
                max_features=self.max_features, binary=self.binary)
            try:
                vectorizer.fit(_documents(data[name]))
            except ValueError as error:
                raise ValueError(f"{type(self).__name__}: column {name!r}: {error} (every "
                                 "term was a stop word, pruned or absent)") from None
            self.vectorizers_[name] = vectorizer
        self.vocabulary_ = {name: [str(t) for t in v.get_feature_names_out()]
                            for name, v in self.vectorizers_.items()}

    def _output_names(self, columns: list[str]) -> list[str]:
        return [f"{name}_{term}" for name in columns for term in self.vocabulary_[name]]

    def _counts(self, data: pd.DataFrame) -> list[np.ndarray]:
        return [self.vectorizers_[name].transform(_documents(data[name])).toarray()
                for name in data.columns]

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        return np.hstack(self._counts(data))


def _documents(series: pd.Series) -> list[Any]:
    return ["" if value is None or (isinstance(value, float) and np.isnan(value)) else value
            for value in series]


class OrthogonalSparseBigrams(CountVectorizer):
    """Counts of the orthogonal sparse bigrams of each text column (see :func:`osb_terms`):
    columns ``<column>_<first>_<second>`` with one underscore per word of distance between
    the pair's words, distance 1 to ``window - 1``."""

    def __init__(self, window: int = 4, lowercase: bool = True,
                 token_pattern: str = TOKEN_PATTERN,
                 stop_words: str | Sequence[str] | None = None, min_df: int | float = 1,
                 max_df: int | float = 1.0, max_features: int | None = None,
                 binary: bool = False, columns: list[str] | None = None) -> None:
        self.window = window
        super().__init__(lowercase=lowercase, token_pattern=token_pattern,
                         stop_words=stop_words, min_df=min_df, max_df=max_df,
                         max_features=max_features, binary=binary, columns=columns)

    def _analyzer(self) -> WordAnalyzer:
        if not isinstance(self.window, int) or self.window < 2:
            raise ValueError(f"OrthogonalSparseBigrams: window={self.window!r} must be an "
                             "integer >= 2")
        return WordAnalyzer(self.lowercase, self.token_pattern, self.stop_words,
                            osb_window=self.window)


TF_KINDS = ("frequency", "count", "sublinear")
IDF_KINDS = ("log", "smooth")


class TfidfVectorizer(CountVectorizer):
    """tf-idf per text column, columns ``<column>_<term>``.

    The defaults are the textbook definition: tf = count of the term in the document /
    number of terms in the document (``tf='frequency'``), idf = ln(N / df) with N documents
    and df of them containing the term (``idf='log'``), no normalisation. ``tf='count'``
    uses raw counts, ``'sublinear'`` 1 + ln(count); ``idf='smooth'`` is scikit-learn's
    ln((1 + N) / (1 + df)) + 1; ``norm`` 'l1' or 'l2' scales each row. With
    ``tf='count', idf='smooth', norm='l2'`` the values are scikit-learn's TfidfVectorizer's.
    """

    def __init__(self, tf: str = "frequency", idf: str = "log", norm: str | None = None,
                 ngram_range: tuple[int, int] = (1, 1), lowercase: bool = True,
                 token_pattern: str = TOKEN_PATTERN,
                 stop_words: str | Sequence[str] | None = None, min_df: int | float = 1,
                 max_df: int | float = 1.0, max_features: int | None = None,
                 columns: list[str] | None = None) -> None:
        self.tf = tf
        self.idf = idf
        self.norm = norm
        super().__init__(ngram_range=ngram_range, lowercase=lowercase,
                         token_pattern=token_pattern, stop_words=stop_words, min_df=min_df,
                         max_df=max_df, max_features=max_features, binary=False,
                         columns=columns)

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        if self.tf not in TF_KINDS:
            raise ValueError(f"TfidfVectorizer: tf={self.tf!r} is not one of {TF_KINDS}")
        if self.idf not in IDF_KINDS:
            raise ValueError(f"TfidfVectorizer: idf={self.idf!r} is not one of {IDF_KINDS}")
        if self.norm not in (None, "l1", "l2"):
            raise ValueError(f"TfidfVectorizer: norm={self.norm!r} is not one of None, 'l1', "
                             "'l2'")
        super()._fit(data, y)
        self.idf_ = {}
        documents = len(data)
        for name, counts in zip(data.columns, self._counts(data), strict=True):
            df = (counts > 0).sum(axis=0).astype(float)
            if self.idf == "log":
                self.idf_[name] = np.log(documents / df)
            else:
                self.idf_[name] = np.log((1.0 + documents) / (1.0 + df)) + 1.0

    def _transform(self, data: pd.DataFrame) -> np.ndarray:
        blocks = []
        for name, counts in zip(data.columns, self._counts(data), strict=True):
            counts = counts.astype(float)
            if self.tf == "frequency":
                analyzer = self.vectorizers_[name].analyzer
                lengths = np.array([len(analyzer(d)) for d in _documents(data[name])],
                                   dtype=float)
                tf = np.divide(counts, lengths[:, None], out=np.zeros_like(counts),
                               where=lengths[:, None] > 0)
            elif self.tf == "sublinear":
                tf = np.where(counts > 0, 1.0 + np.log(np.where(counts > 0, counts, 1.0)), 0.0)
            else:
                tf = counts
            values = tf * self.idf_[name]
            if self.norm is not None:
                order = 1 if self.norm == "l1" else 2
                norms = np.linalg.norm(values, ord=order, axis=1, keepdims=True)
                values = np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)
            blocks.append(values)
        return np.hstack(blocks)


class CartesianProduct(FrameTransformer):
    """The cartesian product of two or more categorical or text columns, as one string
    column ``<a>_x_<b>...`` whose value joins one token of each column with
    ``separator`` ("20s" x "M" -> "20s_M"); with ``tokenize`` a text column contributes each
    of its tokens and the crossed tokens are joined by spaces ("red car" x "new" ->
    "red_new car_new"). A row missing any input gets a missing cross. The inputs are kept
    (before the cross) unless ``keep_inputs=False``."""

    accepted_kinds = (STRING, BOOLEAN, NUMERIC)
    default_kinds = (STRING,)

    def __init__(self, separator: str = "_", tokenize: bool = False, lowercase: bool = True,
                 keep_inputs: bool = True, columns: list[str] | None = None) -> None:
        self.separator = separator
        self.tokenize = tokenize
        self.lowercase = lowercase
        self.keep_inputs = keep_inputs
        self.columns = columns

    def _fit(self, data: pd.DataFrame, y: Any) -> None:
        if data.shape[1] < 2:
            raise ValueError(f"CartesianProduct: needs two or more columns, got "
                             f"{list(data.columns)}; pass columns=")
        self.analyzer_ = WordAnalyzer(lowercase=self.lowercase)
        self.name_ = "_x_".join(data.columns)

    def _output_names(self, columns: list[str]) -> list[str]:
        return (list(columns) if self.keep_inputs else []) + [self.name_]

    def _transform(self, data: pd.DataFrame) -> pd.DataFrame:
        from openmaker.processing.transforms.encoding import categories_frame

        frame = categories_frame(data)
        crosses = []
        for row in frame.itertuples(index=False):
            if any(not isinstance(value, str) for value in row):
                crosses.append(None)
                continue
            if self.tokenize:
                parts = [self.analyzer_.tokens(value) for value in row]
            else:
                parts = [[value] for value in row]
            crosses.append(" ".join(self.separator.join(combination)
                                    for combination in itertools.product(*parts)) or None)
        result = data.copy() if self.keep_inputs else pd.DataFrame(index=data.index)
        result[self.name_] = pd.Series(crosses, index=data.index, dtype=object)
        return result
