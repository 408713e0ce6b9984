"""The stimulus program language (see README.md here): typed JSON descriptions of how to
generate a unit's transactions, validated against its schema, sampled with numpy or drawn
through Hypothesis."""
from mxdv.sequences.programs.language import ProgramError, validate_program
from mxdv.sequences.programs.sample import hypothesis_txn, sample_program, sample_txn
from mxdv.sequences.programs.swarm import random_program

__all__ = ["ProgramError", "validate_program", "sample_program", "sample_txn", "hypothesis_txn",
           "random_program"]
