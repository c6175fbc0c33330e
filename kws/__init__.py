"""kws: small streaming keyword spotting for edge devices.

Stages, each a sub-package whose imports only point to earlier ones (``tests/test_layout.py``):
``core`` -> ``features`` -> ``data`` -> ``metrics`` -> ``runtime`` -> ``peers`` -> ``train`` ->
``synth`` -> ``export`` -> ``firmware`` -> ``eval`` -> ``apps`` -> ``cli``. The base install
(the runtime) imports without torch; training needs the ``train`` extra.
"""

from kws.core.audio import AudioError, load_audio
from kws.core.config import Config, ConfigError, FrontendConfig, load_config
from kws.core.decision import DecisionRule

__all__ = ["AudioError", "Config", "ConfigError", "DecisionRule", "FrontendConfig",
           "__version__", "load_audio", "load_config"]
__version__ = "0.2.0"
