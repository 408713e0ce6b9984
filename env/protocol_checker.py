"""Valid/ready protocol rules, checked every cycle by each stream's monitor.

1. ``valid`` is never X/Z once reset is released.
2. While ``valid && !ready``, the data must not change and ``valid`` must not drop
   (a presented beat is held until it is accepted).
3. An accepted beat carries no X/Z bits.
"""
from __future__ import annotations

from typing import Callable


class ProtocolChecker:
    def __init__(self, prefix: str, report: Callable[[str], None]):
        self.prefix = prefix
        self.report = report
        self._held: dict | None = None

    def reset(self) -> None:
        self._held = None

    def valid_bit(self, value) -> bool:
        if not value.is_resolvable:
            self.report(f"{self.prefix}valid is {value} (X/Z) after reset")
            return False
        return int(value) == 1

    def idle(self) -> None:
        if self._held is not None:
            self.report(f"{self.prefix}valid dropped while the beat was stalled (beat withdrawn)")
        self._held = None

    def check(self, data: dict, ready: bool) -> None:
        if self._held is not None:
            changed = [k for k, v in data.items() if v != self._held[k]]
            if changed:
                self.report(f"{self.prefix}{', '.join(changed)} changed while valid && !ready")
        if ready:
            bad = [k for k, v in data.items() if not v.is_resolvable]
            if bad:
                self.report(f"{self.prefix}{', '.join(bad)} has X/Z bits in an accepted beat")
        self._held = None if ready else dict(data)
