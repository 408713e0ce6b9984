"""The sequence item of the valid/ready agent: one beat, tagged with its transaction."""
from __future__ import annotations

from pyuvm import uvm_sequence_item


class BeatItem(uvm_sequence_item):
    """One beat: ``{field: value}`` for the port's data signals.

    ``txn_id`` ties the beat to its transaction; ``generation`` is the reset epoch the beat was
    issued in (a reset increments it, and drivers drop beats of earlier epochs).
    """

    def __init__(self, name: str, beat: dict[str, int], txn_id: int, generation: int):
        super().__init__(name)
        self.beat = beat
        self.txn_id = txn_id
        self.generation = generation

    def __str__(self) -> str:
        fields = " ".join(f"{k}=0x{v:x}" for k, v in self.beat.items())
        return f"txn {self.txn_id} beat [{fields}]"
