"""TensorFlow's native start-up messages, kept off the terminal unless the start-up fails.

Before absl logging is initialised, TensorFlow's C++ code writes INFO lines (oneDNN, CUDA
drivers, ``cuInit`` on a machine without a GPU) straight to file descriptor 2, whatever
``TF_CPP_MIN_LOG_LEVEL`` says. ``DEEPAM_NATIVE_LOG=1`` shows them.
"""

import contextlib
import os
import sys
import tempfile

STDERR = 2


@contextlib.contextmanager
def captured_native_stderr():
    """Sends file descriptor 2 to a temporary file for the block; what was written there
    goes back to stderr when the block raises (so import errors keep their context)."""
    if os.environ.get("DEEPAM_NATIVE_LOG") == "1":
        yield
        return
    try:
        saved = os.dup(STDERR)
    except OSError:  # no descriptor 2 (e.g. a detached process): nothing to hide
        yield
        return
    sys.stderr.flush()
    failed = True
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), STDERR)
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, STDERR)
            os.close(saved)
            if failed:
                capture.seek(0)
                sys.stderr.write(capture.read().decode(errors="replace"))
