"""The collector buffer: validated chains wait here until a row threshold or the cycle's end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from chalicelib.domain.chain import ChainBatch, reject_reasons
from chalicelib.domain.models import UnderlyingQuote
from chalicelib.logs import log_event


@dataclass
class ChainBuffer:
    """Holds accepted contracts and their underlyings; counts rejected rows by reason."""

    flush_rows: int
    batches: list[ChainBatch] = field(default_factory=list)
    underlyings: list[UnderlyingQuote] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    rows: int = 0

    def add(self, underlying: UnderlyingQuote, contracts: ChainBatch) -> int:
        """Validate and buffer one ticker's chain; returns the rows accepted."""
        keep, reasons = reject_reasons(contracts)
        if reasons:
            self.rejected.update(reasons)
            log_event("rows_rejected", ticker=underlying.ticker, reasons=dict(reasons))
            contracts = contracts.filter(keep)
        self.batches.append(contracts)
        self.underlyings.append(underlying)
        self.rows += len(contracts)
        return len(contracts)

    @property
    def full(self) -> bool:
        return self.rows >= self.flush_rows

    def drain(self) -> tuple[ChainBatch, list[UnderlyingQuote]]:
        batch, underlyings = ChainBatch.concat(self.batches), self.underlyings
        self.batches, self.underlyings, self.rows = [], [], 0
        return batch, underlyings
