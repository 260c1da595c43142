"""The IB filter's rule (benefit forms, self-sizing) and its calibration search, on numbers
chosen by hand: no model."""

from __future__ import annotations

import numpy as np

from ragpress.compressors.ib_filter import ib_benefit, keep_mask
from ragpress.training.ib_filter import Rule, Scores, choose, evaluate, grid

ONE = np.array([1])


def test_mean_cost_charges_density_not_length() -> None:
    gain, asked = np.array([2.0, 2.0]), np.array([4, 4])
    selfinfo, tokens = np.array([30.0, 90.0]), np.array([10, 30])  # same 3 nats per token
    summed = ib_benefit(gain, selfinfo, tokens, asked, beta=20, cost_form="sum")
    assert summed.tolist() == [10.0, -50.0]  # the long sentence pays for its length
    mean = ib_benefit(gain, selfinfo, tokens, asked, beta=2, cost_form="mean")
    assert mean.tolist() == [1.0, 1.0]
    per_question_token = ib_benefit(gain, selfinfo, tokens, asked, beta=8, gain_form="mean")
    assert per_question_token.tolist() == [-26.0, -86.0]  # 8 * 2 / 4 - self-information
    flat = ib_benefit(gain, selfinfo, tokens, asked, beta=1, cost_form="flat")
    assert flat.tolist() == [1.0, 1.0]


def test_keep_mask_abstains_then_sizes_relative_to_the_best() -> None:
    assert not keep_mask(np.array([-1.0, 0.0, -3.0]), 0.0).any()  # nothing worth its cost
    assert not keep_mask(np.array([]), 0.0).any()
    benefits = np.array([10.0, 6.0, 2.0, -4.0, -30.0])
    assert keep_mask(benefits, 0.5).tolist() == [True, True, False, False, False]
    assert keep_mask(benefits, 0.0).tolist() == [True, True, True, False, False]
    # A negative share also keeps units a little below zero, once something was worth keeping.
    assert keep_mask(benefits, -0.5).tolist() == [True, True, True, True, False]
    assert not keep_mask(benefits, 0.0, relevant=False).any()  # no sentence reached the floor


def _record(gains: list[float], answer: int | None, cos: list[float]) -> dict:
    sentences = [[0, 0, 1, g, 20.0, 10, k == answer] for k, g in enumerate(gains)]
    return {"id": "x", "question": "q", "sentences": sentences, "cos": cos}


def _settings() -> dict[str, Scores]:
    count = lambda text: 4  # noqa: E731 -- every question is 4 tokens
    # The answer sentence gains most, but the cosine prefers a distractor.
    answerable = [_record([9.0, 1.0, 0.5], 0, [0.2, 0.9, 0.1]) for _ in range(4)]
    noise = [_record([0.5, 0.2], None, [0.3, 0.1]) for _ in range(4)]
    return {
        "other-article": Scores.build("other-article", answerable, count),
        "same-article": Scores.build("same-article", answerable, count),
        "gold-only": Scores.build("gold-only", answerable, count),
        "noise-only": Scores.build("noise-only", noise, count),
    }


def test_vectorised_keep_matches_the_compressors_rule_item_by_item() -> None:
    scores = _settings()["other-article"]
    rule = Rule(beta=2.0, gain="sum", cost="mean", share=-0.5)
    benefit = ib_benefit(
        scores.gain, scores.selfinfo, scores.tokens, scores.asked, beta=2.0, cost_form="mean"
    )
    ends = [*scores.starts[1:], len(benefit)]
    expected = np.concatenate(
        [keep_mask(benefit[a:b], -0.5) for a, b in zip(scores.starts, ends, strict=True)]
    )
    assert (scores.keep(rule) == expected).all()


def test_evaluate_compares_with_the_cosine_baseline_at_the_same_tokens() -> None:
    scores = _settings()["other-article"]
    # beta 1, mean cost 2 nats/token: only the answer sentence (gain 9) is worth keeping.
    figures = evaluate(scores, Rule(beta=1.0, cost="mean"))
    assert figures["survives"] == 1.0 and figures["returns_nothing"] == 0.0
    assert figures["ratio"] == 3.0  # 10 of 30 tokens
    assert figures["baseline_survives"] == 0.0  # with 10 tokens the cosine keeps the distractor


def test_choose_meets_the_abstention_targets_and_beats_the_baseline() -> None:
    settings = _settings()
    rules = [Rule(beta, "sum", "mean", share) for beta in (0.1, 1.0, 5.0) for share in (0, -1)]
    best = choose(settings, grid(settings, rules), min_survives=0.9)
    assert best["rule"] == Rule(1.0, "sum", "mean", 0)  # the smallest output meeting all
    assert best["noise_abstains"] == 1.0 and best["wrong_abstains"] == 0.0
    assert best["margin"] == 1.0


def test_choose_falls_back_to_the_best_survival_when_no_rule_qualifies() -> None:
    settings = _settings()
    rules = [Rule(0.1, "sum", "mean", 0.0), Rule(5.0, "sum", "mean", 0.0)]
    best = choose(settings, grid(settings, rules), min_survives=1.5)  # no rule can
    assert best["rule"] == Rule(5.0, "sum", "mean", 0.0)  # keeps the answer; 0.1 abstains


def test_the_floor_sets_abstention_apart_from_the_size() -> None:
    settings = _settings()
    loose = Rule(5.0, "sum", "mean", 0.0)  # keeps noise: 5 x 0.5 gain - 2 nats per token > 0
    assert evaluate(settings["noise-only"], loose)["returns_nothing"] == 0.0
    floored = Rule(5.0, "sum", "mean", 0.0, floor=1.0)  # answers gain 9 / 4 tokens, noise 0.125
    assert evaluate(settings["noise-only"], floored)["returns_nothing"] == 1.0
    kept = evaluate(settings["other-article"], floored)
    assert kept["survives"] == 1.0 and kept["returns_nothing"] == 0.0
    assert kept["ratio"] == evaluate(settings["other-article"], loose)["ratio"]  # same size
