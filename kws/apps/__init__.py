"""The applications on the runtime: ``kws detect`` (:mod:`~kws.apps.detect`), ``kws listen``
(:mod:`~kws.apps.listen`), ``kws serve`` (:mod:`~kws.apps.wyoming`) and ``kws bench``
(:mod:`~kws.apps.bench`). Each pushes audio through a :class:`kws.runtime.Spotter`; none imports
training, export or evaluation code, nor torch."""
