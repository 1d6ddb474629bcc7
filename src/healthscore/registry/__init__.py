"""Everything about a model outside training: the MLflow store (`store`), training runs and
registration (`runs`), the pyfunc wrapper logged with every model (`pyfunc`), exported folders
for batch jobs without a server (`export`), loading by registry URI or folder (`loading`) and
promotion (`promotion`)."""

from healthscore.registry.export import export_folder
from healthscore.registry.loading import load_model, load_version
from healthscore.registry.promotion import Promotion, promote
from healthscore.registry.runs import RegisteredModel, log_rejected, log_training
from healthscore.registry.store import connect, tracking_uri

__all__ = ["Promotion", "RegisteredModel", "connect", "export_folder", "load_model", "load_version", "log_rejected", "log_training",
           "promote", "tracking_uri"]
