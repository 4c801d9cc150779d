import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """A small noise-conditioned DeepAM saved as .keras (untrained: the identity)."""
    from deepam_tf import DeepAM

    path = tmp_path_factory.mktemp("model") / "small.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(path)
    return str(path)
