"""Valid/ready protocol rules, checked every cycle by each stream's monitor.

1. ``valid`` is never X/Z once reset is released.
2. While ``valid && !ready``, the data must not change and ``valid`` must not drop
   (a presented beat is held until it is accepted).
3. A presented beat (``valid`` high) carries no X/Z bits.
4. ``ready`` is never X/Z once reset is released (checked by the monitor with :meth:`ready_bit`).
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

    def ready_bit(self, value) -> bool:
        if not value.is_resolvable:
            self.report(f"{self.prefix}ready is {value} (X/Z) after reset")
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
        bad = [k for k, v in data.items() if not v.is_resolvable]
        if bad:
            self.report(f"{self.prefix}{', '.join(bad)} has X/Z bits while {self.prefix}valid is high")
        self._held = None if ready else dict(data)
