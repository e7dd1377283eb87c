"""How studies run: the run folder (``run``: one writer, one configuration, whole units, resumption), Ray workers
(``cluster``) and a sweep of single effects spread over them (``sweeps``)."""
