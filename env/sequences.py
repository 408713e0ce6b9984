"""The one pyuvm sequence the environment needs: send prepared beats to a sequencer."""
from __future__ import annotations

from pyuvm import uvm_sequence

from mxdv.env.agents.valid_ready.item import BeatItem


class BeatSequence(uvm_sequence):
    """Sends the given beats in order. Strategies decide *what* to send (transactions);
    the unit's ``encode`` turns them into beats; this sequence only delivers them."""

    def __init__(self, name: str, items: list[BeatItem]):
        super().__init__(name)
        self.items = items

    async def body(self) -> None:
        for item in self.items:
            await self.start_item(item)
            await self.finish_item(item)
