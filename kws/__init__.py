"""kws: small streaming keyword spotting for edge devices.

The base package (audio, frontend, runtime) imports without torch; training lives in modules that
import torch themselves and are only needed with the ``train`` extra.
"""

from kws.audio import AudioError, load_audio
from kws.config import Config, ConfigError, FrontendConfig, load_config
from kws.frontend import StreamingFrontend, log_mel

__all__ = ["AudioError", "Config", "ConfigError", "FrontendConfig", "StreamingFrontend",
           "load_audio", "load_config", "log_mel"]
__version__ = "0.1.0"
