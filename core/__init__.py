"""ostinato.core: scans, SSM/RNN layers, attention with memory, registry, config, trainer, CLI, data roots."""
from .errors import ConfigError, DataError, EnvironmentMissing, OstinatoError, TrainingError
from .registry import create_model, list_datasets, list_models, register_dataset, register_model
from . import domain as _domain  # noqa: F401,E402  (installs the registry's domain loader)

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "EnvironmentMissing",
    "OstinatoError",
    "TrainingError",
    "create_model",
    "list_models",
    "list_datasets",
    "register_model",
    "register_dataset",
    "__version__",
]
