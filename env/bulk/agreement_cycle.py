"""cocotb test module of the cycle-mode half of :mod:`mxdv.env.bulk.agreement`."""
import cocotb

from mxdv.env.bulk.agreement import run_cycle


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def CycleAgreement(dut):
    await run_cycle(dut)
