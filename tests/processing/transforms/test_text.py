"""Text features: the seeds' tf-idf values for the two-document fox example, scikit-learn's
tf-idf as an option, bag of words and unigrams+bigrams (the seeds' (2, 6 + 6) example),
orthogonal sparse bigrams and their names, tokenising, stop words and cartesian
products; fitted vectorizers survive pickling."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer as SklearnTfidfVectorizer

from openmaker.processing.transforms import (
    CartesianProduct,
    CountVectorizer,
    OrthogonalSparseBigrams,
    StopWordRemover,
    TfidfVectorizer,
    Tokenizer,
)
from openmaker.processing.transforms.text import osb_terms

FOX = pd.DataFrame({"doc": [
    "A quick brown fox jumps over the lazy dog. What a fox!",
    "A quick brown fox jumps over the lazy fox. What a fox!"]})
SMOKE = pd.DataFrame({"doc": ["Please do not sit here", "Please do not smoke here"]})


def test_tf_idf_has_the_seeds_values_for_the_fox_documents() -> None:
    tfidf = TfidfVectorizer().fit(FOX)  # tf = count / words, idf = ln(N / df)
    out = tfidf.transform(FOX)
    vocabulary = tfidf.vocabulary_["doc"]
    assert "doc_fox" in out.columns and "doc_a" in out.columns  # one-letter words count
    assert tfidf.idf_["doc"][vocabulary.index("fox")] == 0.0  # log(2 / 2)
    assert out["doc_fox"].tolist() == [0.0, 0.0]
    assert tfidf.idf_["doc"][vocabulary.index("dog")] == pytest.approx(math.log(2))
    assert out["doc_dog"].tolist() == pytest.approx([math.log(2) / 12, 0.0])
    # the term frequencies themselves: 2/12 and 3/12 for fox
    frequencies = TfidfVectorizer(idf="smooth").fit(FOX)
    smooth_idf = math.log(3 / 3) + 1  # ln((1 + N) / (1 + df)) + 1 = 1 for fox
    assert frequencies.transform(FOX)["doc_fox"].tolist() == pytest.approx(
        [2 / 12 * smooth_idf, 3 / 12 * smooth_idf])


def test_tf_idf_with_counts_smooth_idf_and_l2_equals_scikit_learn() -> None:
    documents = ["the cat sat", "the dog sat down", "a cat and a dog", "down down down"]
    frame = pd.DataFrame({"doc": documents})
    ours = TfidfVectorizer(tf="count", idf="smooth", norm="l2").fit_transform(frame)
    reference = SklearnTfidfVectorizer(token_pattern=r"(?u)\b\w+\b")
    expected = reference.fit_transform(documents).toarray()
    assert [c.removeprefix("doc_") for c in ours.columns] == list(
        reference.get_feature_names_out())
    assert ours.to_numpy() == pytest.approx(expected)
    sublinear = TfidfVectorizer(tf="sublinear", idf="smooth", norm="l2").fit_transform(frame)
    expected = SklearnTfidfVectorizer(token_pattern=r"(?u)\b\w+\b", sublinear_tf=True
                                      ).fit_transform(documents).toarray()
    assert sublinear.to_numpy() == pytest.approx(expected)
    with pytest.raises(ValueError, match="tf='bm25' is not one of"):
        TfidfVectorizer(tf="bm25").fit(frame)


def test_unigrams_and_bigrams_of_the_seeds_example_give_six_plus_six_columns() -> None:
    vectorizer = CountVectorizer(ngram_range=(1, 2)).fit(SMOKE)
    out = vectorizer.transform(SMOKE)
    assert out.shape == (2, 12)
    terms = vectorizer.vocabulary_["doc"]
    assert sorted(t for t in terms if " " not in t) == [
        "do", "here", "not", "please", "sit", "smoke"]
    assert sorted(t for t in terms if " " in t) == [
        "do not", "not sit", "not smoke", "please do", "sit here", "smoke here"]
    assert out["doc_not sit"].tolist() == [1, 0]
    assert out["doc_please do"].tolist() == [1, 1]


def test_bag_of_words_counts_and_pruning() -> None:
    frame = pd.DataFrame({"doc": ["b a b", "a c", "c c c d"], "id": [1, 2, 3]})
    counts = CountVectorizer().fit_transform(frame)
    assert list(counts.columns) == ["doc_a", "doc_b", "doc_c", "doc_d", "id"]
    assert counts[["doc_a", "doc_b", "doc_c", "doc_d"]].to_numpy().tolist() == [
        [1, 2, 0, 0], [1, 0, 1, 0], [0, 0, 3, 1]]
    frequent = CountVectorizer(min_df=2).fit(frame)
    assert frequent.vocabulary_["doc"] == ["a", "c"]
    binary = CountVectorizer(binary=True).fit_transform(frame)
    assert binary["doc_c"].tolist() == [0, 1, 1]
    unseen = CountVectorizer().fit(frame).transform(frame.assign(doc=["zzz", None, "a a"]))
    assert unseen["doc_a"].tolist() == [0, 0, 2]
    with pytest.raises(ValueError, match="column 'doc': empty vocabulary"):
        CountVectorizer(stop_words="english").fit(pd.DataFrame({"doc": ["the and a"]}))


def test_orthogonal_sparse_bigrams_pair_each_word_with_the_next_window_words() -> None:
    assert osb_terms(["the", "quick", "brown", "fox"], 4) == [
        "the_quick", "the__brown", "the___fox", "quick_brown", "quick__fox", "brown_fox"]
    assert osb_terms(["a", "b", "c"], 2) == ["a_b", "b_c"]
    frame = pd.DataFrame({"doc": ["The quick brown fox", "the quick dog"]})
    osb = OrthogonalSparseBigrams(window=3).fit(frame)
    out = osb.transform(frame)
    assert list(out.columns) == ["doc_brown_fox", "doc_quick__fox", "doc_quick_brown",
                                 "doc_quick_dog", "doc_the__brown", "doc_the__dog",
                                 "doc_the_quick"]
    assert out["doc_the_quick"].tolist() == [1, 1]
    assert out["doc_the__brown"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="window=1 must be an integer >= 2"):
        OrthogonalSparseBigrams(window=1).fit(frame)


def test_tokenising_and_stop_word_removal() -> None:
    frame = pd.DataFrame({"doc": ["The Quick, brown fox!", None], "n": [1, 2]})
    tokens = Tokenizer().fit_transform(frame)
    assert tokens["doc"].tolist() == ["the quick brown fox", ""]
    lists = Tokenizer(output="list", lowercase=False).fit_transform(frame)
    assert lists["doc"].tolist() == [["The", "Quick", "brown", "fox"], []]
    assert StopWordRemover().fit_transform(frame)["doc"].tolist() == ["quick brown fox", ""]
    custom = StopWordRemover(stop_words=["fox", "the"]).fit_transform(frame)
    assert custom["doc"].tolist() == ["quick brown", ""]
    with pytest.raises(ValueError, match="stop_words='french'"):
        StopWordRemover(stop_words="french").fit(frame)


def test_cartesian_product_of_categorical_and_text_columns() -> None:
    frame = pd.DataFrame({"age": ["20s", "30s", None], "sex": ["M", "F", "F"],
                          "title": ["red car", "new", "x"]})
    crossed = CartesianProduct(columns=["age", "sex"]).fit_transform(frame)
    assert list(crossed.columns) == ["age", "sex", "age_x_sex", "title"]
    assert crossed["age_x_sex"].tolist()[:2] == ["20s_M", "30s_F"]
    assert crossed["age_x_sex"].iloc[2] is None
    texts = CartesianProduct(columns=["title", "sex"], tokenize=True, keep_inputs=False)
    assert texts.fit_transform(frame)["title_x_sex"].tolist() == [
        "red_m car_m", "new_f", "x_f"]
    three = CartesianProduct(columns=["age", "sex", "title"]).fit_transform(frame.iloc[:1])
    assert three["age_x_sex_x_title"].tolist() == ["20s_M_red car"]
    with pytest.raises(ValueError, match="needs two or more columns"):
        CartesianProduct(columns=["age"]).fit(frame)


def test_fitted_text_transforms_pickle() -> None:
    for transform in (TfidfVectorizer(ngram_range=(1, 2)), OrthogonalSparseBigrams(),
                      Tokenizer(stop_words="english")):
        fitted = transform.fit(FOX)
        restored = pickle.loads(pickle.dumps(fitted))
        assert np.array_equal(restored.transform(FOX).to_numpy(),
                              fitted.transform(FOX).to_numpy())
