"""A progress listener for ``reporting_batches`` that adds up the tokens it hears about."""

from __future__ import annotations


class TokenCounter:
    planned_tokens = ran_tokens = 0

    def planned(self, tokens: int) -> None:
        self.planned_tokens += tokens

    def ran(self, tokens: int) -> None:
        self.ran_tokens += tokens
