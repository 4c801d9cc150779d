import os
import subprocess
import sys

import pytest

from deepam_tf.native_log import captured_native_stderr


def test_importing_the_package_prints_nothing():
    env = {k: v for k, v in os.environ.items() if k not in ("DEEPAM_NATIVE_LOG", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-c", "import deepam_tf"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0
    assert done.stderr == "" and done.stdout == ""


def test_native_text_is_hidden_unless_the_block_fails(capfd):
    with captured_native_stderr():
        os.write(2, b"native chatter\n")
    assert "native chatter" not in capfd.readouterr().err
    with pytest.raises(RuntimeError):
        with captured_native_stderr():
            os.write(2, b"why it failed\n")
            raise RuntimeError("import failed")
    assert "why it failed" in capfd.readouterr().err
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err
