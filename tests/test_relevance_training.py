"""The relevance recipe's sentence ranking loss: it scores sentences as the compressor ranks
them (mean keep logit) and asks the answer sentence to come first; the answer loss and its
labels."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ragpress.training.qa import QAItem  # noqa: E402
from ragpress.training.relevance import (  # noqa: E402
    ANSWER,
    KEEP,
    Batch,
    Pair,
    build_examples,
    kept_sentences,
    loss_of,
    sentence_pairs,
    sentence_ranking_loss,
)


def _batch(sentence: list[list[int]], keep: list[list[float]]) -> Batch:
    return Batch(
        ids=None,
        mask=None,
        keep=torch.tensor(keep),
        relevant=None,
        sentence=torch.tensor(sentence),
        answer=None,
    )


# One window: [CLS] q [SEP] | sentence 0 (2 tokens) | sentence 1 (2 tokens), the answer | [SEP]
SENTENCE = [[-1, -1, -1, 0, 0, 1, 1, -1]]
KEEP_LABELS = [[-100, -100, -100, 0, 0, 0.6, 1.0, -100]]


def test_is_low_when_the_answer_sentence_ranks_first_and_high_when_it_does_not():
    right = torch.tensor([[0.0, 0, 0, -3, -3, 3, 3, 0]])
    wrong = -right
    assert sentence_ranking_loss(right, _batch(SENTENCE, KEEP_LABELS)) < 0.01
    assert sentence_ranking_loss(wrong, _batch(SENTENCE, KEEP_LABELS)) > 5.0


def test_scores_a_sentence_by_the_mean_of_its_tokens_not_their_sum():
    # sentence 0 has a large sum over many tokens, sentence 1 the higher mean: ranked first
    sentence = [[-1, 0, 0, 0, 0, 1, -1]]
    keep = [[-100, 0, 0, 0, 0, 1.0, -100]]
    logits = torch.tensor([[0.0, 1, 1, 1, 1, 2, 0]])
    expected = torch.logsumexp(torch.tensor([1.0, 2.0]), 0) - 2.0
    assert sentence_ranking_loss(logits, _batch(sentence, keep)) == pytest.approx(
        float(expected), abs=1e-6
    )


def test_skips_windows_it_cannot_rank_and_keeps_the_graph():
    # no answer sentence; only answer sentences; padding only
    sentence = [[-1, 0, 0, 1, -1], [-1, 0, 0, 0, -1], [-1, -1, -1, -1, -1]]
    keep = [[-100, 0, 0, 0, -100], [-100, 1, 1, 1, -100], [-100] * 5]
    logits = torch.zeros((3, 5), requires_grad=True)
    loss = sentence_ranking_loss(logits, _batch(sentence, keep))
    assert loss.item() == 0.0
    loss.backward()  # a zero that still belongs to the graph: the training step runs
    assert logits.grad is not None


def test_pushes_the_answer_sentence_up():
    logits = torch.zeros((1, 8), requires_grad=True)
    sentence_ranking_loss(logits, _batch(SENTENCE, KEEP_LABELS)).backward()
    grad = logits.grad[0]
    assert (grad[5:7] < 0).all() and (grad[3:5] > 0).all()  # descent raises the answer's logits
    assert grad[:3].abs().sum() == 0 and grad[7] == 0  # question and [SEP] untouched


def test_the_answer_loss_reads_channel_one_inside_kept_sentences_only():
    # channel 0 keep, channel 1 answer: the answer loss pulls the answer's token up against its
    # sentence neighbour and leaves every other position (question, other sentence) alone
    logits = torch.zeros((1, 8, 2), requires_grad=True)
    batch = Batch(
        ids=None,
        mask=None,
        keep=torch.tensor(KEEP_LABELS, dtype=torch.float),
        relevant=torch.tensor([1.0]),
        sentence=torch.tensor(SENTENCE),
        answer=torch.tensor([[-100, -100, -100, -100, -100, 0.0, 1.0, -100]]),
    )
    with_answer = loss_of(logits, batch, relevance_weight=1.0, answer_weight=1.0)
    without = loss_of(logits, batch, relevance_weight=1.0)
    assert with_answer > without
    (with_answer - without).backward()
    grad = logits.grad[0, :, ANSWER]
    assert grad[6] < 0 < grad[5]  # descent raises the answer token, lowers its neighbour
    assert grad[[0, 1, 2, 3, 4, 7]].abs().sum() == 0
    assert logits.grad[0, 1:, KEEP].abs().sum() == 0  # the keep channel is not its business


@pytest.mark.real_model
def test_answer_labels_mark_the_answer_inside_its_sentence():
    from ragpress.onnx.catalogue import get_spec
    from ragpress.onnx.sources import load_tokenizer

    tokenizer = load_tokenizer(get_spec("minilm-l6"))
    passage = "The sky is blue. It was built by Gustave Eiffel in 1889. Paris is big."
    pair = Pair("Who built it?", passage, ("Gustave Eiffel",), "gold")
    (example,), _ = build_examples(tokenizer, [pair], 192, sentence_label=0.6)
    tokens = tokenizer.convert_ids_to_tokens(example.ids)
    answer = [t for t, a in zip(tokens, example.answer, strict=True) if a == 1.0]
    neighbours = [t for t, a in zip(tokens, example.answer, strict=True) if a == 0.0]
    assert answer == ["gustave", "e", "##iff", "##el"]
    assert neighbours == ["it", "was", "built", "by", "in", "1889", "."]  # its sentence only


def test_sentence_pairs_ask_each_gold_sentence_alone_and_only_the_answers_is_kept():
    passage = "The sky is blue. It was built by Gustave Eiffel in 1889. Paris is big."
    item = QAItem("q1", "Who built it?", ["Gustave Eiffel"], passage, ["Rome is old."])
    pairs = sentence_pairs([item], share=1.0, seed=0)
    assert [p.passage for p in pairs] == [
        "The sky is blue.",
        "It was built by Gustave Eiffel in 1889.",
        "Paris is big.",
    ]
    assert {p.question for p in pairs} == {"Who built it?"}
    labelled = [bool(kept_sentences(p.passage, p.answers)) for p in pairs]
    assert labelled == [False, True, False]
    assert sentence_pairs([item], share=0.0, seed=0) == []
