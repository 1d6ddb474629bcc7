"""Apache Spark as the engine, for a base or a platform that lives on a cluster: the session,
with the settings the pipeline relies on. pyspark is optional (`healthscore[spark]`) and is
imported only here and by the Spark engines, never by the default path.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import TYPE_CHECKING

from healthscore.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SETTINGS = {
    "spark.sql.session.timeZone": "UTC",  # dates and scored_at are UTC, as the local job writes them
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",  # outputs hold Parquet parts only
    "spark.ui.showConsoleProgress": "false",  # progress is ours to show
}


def spark_session(master: str | None = None, settings: dict[str, str] | None = None) -> SparkSession:
    """The active session (under `spark-submit` or a notebook: the cluster's), or a new one on
    `master` (default `local[*]`: this machine's cores)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("--engine spark needs pyspark: pip install 'healthscore[spark]' (and a Java 17+ runtime)") from None
    # pyspark 4.3 warns that it does not fully support pandas 3; the engine's parity tests run on pandas 3
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName("healthscore")
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit: a session on this machine
        builder = builder.master(master or "local[*]")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter, where healthscore is
    for key, value in (SETTINGS | (settings or {})).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # no Java, or one too old: pyspark says so in its own words
        raise ConfigError(f"Spark did not start ({str(exc).splitlines()[0]}); it needs a Java 17+ runtime "
                          "(Debian: scripts/install-java.sh)") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark
