"""emergence-probes analysis: reads tidy result tables; imports no torch at module level.

Results from this toolkit and from other tools (CSV, lm-evaluation-harness JSON)
meet here as one table format (``analysis.results``).
"""
