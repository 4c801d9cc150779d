"""Every tutorial runs top to bottom on a fresh kernel; a failing cell fails the test."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

FOLDER = os.path.join(os.path.dirname(__file__), "..", "notebooks")
NOTEBOOKS = sorted(name for name in os.listdir(FOLDER) if name.endswith(".ipynb"))
MACHINE_PATHS = ("/tmp/", "/root/", "/home/", "/work/", "site-packages")


def test_there_are_tutorials():
    assert {"01_quickstart_denoising.ipynb", "02_train_with_model_fit.ipynb",
            "03_inside_deepam.ipynb", "04_depth_sr_and_rgb_nir.ipynb",
            "05_export_serving_tflite.ipynb"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name):
    book = nbformat.read(os.path.join(FOLDER, name), as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": FOLDER}}).execute()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_outputs_and_no_machine_paths(name):
    book = nbformat.read(os.path.join(FOLDER, name), as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "commit the notebook executed"
    assert any(o.output_type == "display_data" for cell in code for o in cell.outputs), "no plot"
    texts = [cell.source for cell in book.cells]
    for cell in code:
        for output in cell.outputs:
            texts.append(output.get("text", "") + output.get("data", {}).get("text/plain", ""))
    found = [p for p in MACHINE_PATHS if any(p in t for t in texts)]
    assert not found, f"machine-specific paths in {name}: {found}"
