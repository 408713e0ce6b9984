"""cocotb test module of the bulk-mode half of :mod:`mxdv.env.bulk.agreement`."""
import cocotb

from mxdv.env.bulk.agreement import run_bulk


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def BulkAgreement(dut):
    await run_bulk(dut)
