"""Bulk mode (issue 10): a split testbench for Verilator.

The timed side is a SystemVerilog harness generated from the unit's port declaration
(:mod:`.harness_gen`): an HDL clock, one transactor per valid/ready port that reads its
stimulus and its per-cycle schedule (input gaps, output backpressure, resets) from memories,
and capture memories recording every accepted beat with its cycle. The memories are C
buffers owned by Python (numpy arrays bound through :mod:`.channels`), read and written by
the harness through DPI. The untimed side is the pyuvm environment: a batch driver
(:mod:`.driver`) loads a whole batch, a batch monitor (:mod:`.monitor`) publishes what the
captures recorded to the same predictor and scoreboard as cycle mode.
"""
