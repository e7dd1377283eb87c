"""The planted zoo (``zoo``: hand-set models whose mechanism is exact) and the cases every verdict is checked on
(``cases``); ``probes validate`` (``probes.pipelines.validate``) runs them."""
