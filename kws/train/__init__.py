"""Training (needs the ``train`` extra: torch): corpora become augmented sequences
(:mod:`~kws.train.sequences`, :mod:`~kws.train.augment`), the GRU (:mod:`~kws.train.model`)
learns with :mod:`~kws.train.loss` in :mod:`~kws.train.trainer`, members merge in
:mod:`~kws.train.ensemble`, and :mod:`~kws.train.checkpoint` is what export and evaluation read.
:func:`kws.train.run.train` is the entry point."""
