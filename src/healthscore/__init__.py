"""healthscore: calibrated customer health scores learned from churned-vs-retained history.

The pipeline, one module per step:
raw tables (`sources`) -> metrics and dataset (`catalogue`, `metrics_sql`, `dataset`, `snapshot`)
-> model -> scores and reasons -> reports. The CLI (`healthscore.cli`) is a thin layer over these.
"""

from healthscore.config import Config, ConfigError, load_config
from healthscore.dataset import Dataset, DatasetSpec, build_dataset, read_dataset
from healthscore.sources import DataError

__all__ = ["Config", "ConfigError", "DataError", "Dataset", "DatasetSpec", "build_dataset", "load_config", "read_dataset"]
