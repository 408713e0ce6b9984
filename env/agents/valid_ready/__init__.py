"""Generic valid/ready agent, one module per role (item, config, driver, monitor, sink, agent).

One agent class serves every port of every unit: an *active* agent drives an input stream
(sequencer + driver + monitor); a *passive sink* agent receives an output stream (ready driver
with random backpressure + monitor). Monitors check the protocol as they sample.
"""
from mxdv.env.agents.valid_ready.agent import ValidReadyAgent
from mxdv.env.agents.valid_ready.config import Backpressure, Idle, StreamConfig
from mxdv.env.agents.valid_ready.item import BeatItem

__all__ = ["ValidReadyAgent", "StreamConfig", "Idle", "Backpressure", "BeatItem"]
