"""Ask a backend about caption pairs in one verdict mode and turn its answers into labels.

`generate`: chain of thought, regex verdict, one retry in the same conversation, then UNKNOWN.
`logprob`: P("1") vs P("2") after the answer prefix -> soft label P(first) -> hard label (tie band).
With ``both_orders`` every pair is also asked swapped and the two answers are merged.
"""

from __future__ import annotations

import dataclasses
import math

from motif_jax.annotate.backends.base import Backend
from motif_jax.annotate.prompts import Conversation, PromptTemplate
from motif_jax.annotate.verdict import combine_orders, hard_label, parse_verdict, soft_label, swap_label
from motif_jax.data.dataset import Label

MODES = ("generate", "logprob")
_P_FIRST_OF_LABEL = {Label.FIRST: 1.0, Label.SECOND: 0.0, Label.TIE: 0.5, Label.UNKNOWN: float("nan")}


@dataclasses.dataclass
class Answer:
    """One pair's result in the order it was asked, plus what happened on the way."""

    label: int
    p_first: float
    transcript: str = ""
    requests: int = 0
    retried: bool = False


def transcript(conversation: Conversation) -> str:
    return "\n\n".join(f"### {m['role']}\n{m['content']}" for m in conversation)


def merge_both_orders(ab: Answer, ba: Answer, tie_band: float, mode: str) -> Answer:
    """Combine an answer with the answer to the swapped question (whose labels are swapped back)."""
    if mode == "logprob":
        ps = [p for p in (ab.p_first, 1.0 - ba.p_first) if not math.isnan(p)]
        p_first = sum(ps) / len(ps) if ps else float("nan")
        label = hard_label(p_first, tie_band)
    else:
        label = combine_orders(ab.label, swap_label(ba.label))
        p_first = _P_FIRST_OF_LABEL[label]
    text = f"{ab.transcript}\n\n===== swapped order =====\n\n{ba.transcript}"
    return Answer(label, p_first, text, ab.requests + ba.requests, ab.retried or ba.retried)


class Asker:
    def __init__(
        self,
        backend: Backend,
        template: PromptTemplate,
        mode: str = "generate",
        both_orders: bool = False,
        tie_band: float = 0.1,
    ):
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} not in {MODES}")
        self.backend, self.template, self.mode = backend, template, mode
        self.both_orders, self.tie_band = both_orders, tie_band

    @property
    def cache_mode(self) -> str:
        """The part of the cache key that says how answers were obtained."""
        return f"{self.mode}+both" if self.both_orders else self.mode

    def ask(self, pairs: list[tuple[str, str]]) -> list[Answer]:
        """Answers for (caption1, caption2) pairs, in one batch for the backend."""
        if not pairs:
            return []
        questions = list(pairs)
        if self.both_orders:
            questions += [(b, a) for a, b in pairs]
        answers = self._generate(questions) if self.mode == "generate" else self._logprob(questions)
        if not self.both_orders:
            return answers
        n = len(pairs)
        return [merge_both_orders(answers[i], answers[n + i], self.tie_band, self.mode) for i in range(n)]

    def _generate(self, questions: list[tuple[str, str]]) -> list[Answer]:
        regex = self.template.verdict_regex
        conversations = [self.template.first_turn(a, b, "generate") for a, b in questions]
        replies = self.backend.complete(conversations)
        answers = []
        for conversation, reply in zip(conversations, replies):
            label = parse_verdict(reply, regex)
            full = [*conversation, {"role": "assistant", "content": reply}]
            answers.append(Answer(label, _P_FIRST_OF_LABEL[label], transcript(full), requests=1))
        failed = [i for i, a in enumerate(answers) if a.label == Label.UNKNOWN]
        if failed:
            retries = [self.template.retry_turn(conversations[i], replies[i]) for i in failed]
            for i, conversation, reply in zip(failed, retries, self.backend.complete(retries)):
                label = parse_verdict(reply, regex)
                full = [*conversation, {"role": "assistant", "content": reply}]
                answers[i] = Answer(label, _P_FIRST_OF_LABEL[label], transcript(full), 2, retried=True)
        return answers

    def _logprob(self, questions: list[tuple[str, str]]) -> list[Answer]:
        conversations = [self.template.first_turn(a, b, "logprob") for a, b in questions]
        answers = []
        for conversation, (p1, p2) in zip(conversations, self.backend.verdict_probs(conversations)):
            p_first = soft_label(p1, p2)
            text = f"{transcript(conversation)}\n\n### P('1') = {p1:.6g}, P('2') = {p2:.6g}"
            answers.append(Answer(hard_label(p_first, self.tie_band), p_first, text, requests=1))
        return answers
