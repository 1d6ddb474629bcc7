import sys
from pathlib import Path

import pytest

# Test helpers (rawbase) are imported as plain modules.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder as the working directory, with its own MLflow store (mlruns/) and model
    exports (models/), as a user's checkout would have."""
    folder = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield folder
