import imageio.v3 as iio
import numpy as np

from deepam_tf import cli


def test_demo_writes_panel_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert cli.main(["denoise", "-o", str(out)]) == 0
    panel = iio.imread(out)
    assert panel.shape == (512, 1536) and panel.dtype == np.uint8
    printed = capsys.readouterr().out
    noisy, restored = (float(line.split("PSNR")[1].split()[0]) for line in printed.splitlines()[1:3])
    assert restored > noisy + 6
    before = out.read_bytes()
    assert cli.main(["denoise", "-o", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".*partial"))
