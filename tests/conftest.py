import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Under pytest-xdist each worker (and the notebook kernels and CLI processes it starts)
# gets its share of the cores for TensorFlow's per-op threads: on 2 cores, 2 workers of 2
# threads each oversubscribe them (tests/test_presets_quality.py: 157 s, 129 s shared).
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, _cores // _workers)))
sys.path.insert(0, os.path.dirname(__file__))

import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    """Frees the session's garbage before an xdist worker reports it has finished.

    pytest's cleanup then runs ``gc.collect()`` five times, and JAX (once imported) runs
    XLA's own garbage collection in a callback of each. An xdist worker still busy 5 s after
    the controller shuts it down gets a SIGINT from execnet; it used to land in that
    callback and print a ``PytestUnraisableExceptionWarning`` after all tests had passed.
    The callback has nothing left to do once the tests have run."""
    gc.callbacks[:] = [c for c in gc.callbacks if not getattr(c, "__module__", "").startswith("jax")]
    gc.collect()


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """A small noise-conditioned DeepAM saved as .keras (untrained: the identity)."""
    from deepam_tf import DeepAM

    path = tmp_path_factory.mktemp("model") / "small.keras"
    DeepAM(stages=1, features=8, depth=4, gamma_layer=3, fusion_layer=2, noise_level_input=True).save(path)
    return str(path)
