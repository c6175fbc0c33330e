"""``kws eval``: engines (:mod:`~kws.eval.engines`) evaluated side by side on the same audio
(:mod:`~kws.eval.harness`), written as reports and plots (:mod:`~kws.eval.report`). Needs the
``eval`` extra (matplotlib, tqdm); exported models need no torch."""
