"""RTL mutation testing (``mxdv mutate``): measure whether the verification notices a wrong design.

``generate`` makes single-edit mutants of a unit's RTL, ``equivalence`` sets aside mutants
Yosys proves equivalent to the original, ``jobs`` runs every strategy on every remaining mutant
(one subprocess per job, killed at a time limit), ``campaign`` ties it together and ``report``
writes the markdown and JSON report.
"""
