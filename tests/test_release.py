"""The release tool re-exports a copy only when what makes it changed (the preset, the
settings, the versions, or the sources the export runs)."""

import json
import os

import pytest

from deepam_tf.export import release


@pytest.fixture
def fake_exports(monkeypatch):
    calls = []

    def saved_model(model, folder, name, version):
        calls.append("saved_model")
        os.makedirs(os.path.join(folder, name, str(version)))
        open(os.path.join(folder, name, str(version), "saved_model.pb"), "w").close()

    def tflite(model, path, size, iterations, overwrite):
        calls.append("tflite")
        open(path, "w").close()

    monkeypatch.setattr(release, "export_saved_model", saved_model)
    monkeypatch.setattr(release, "export_tflite", tflite)
    monkeypatch.setattr(release, "load_preset", lambda name: object())
    return calls


def test_refresh_keeps_unchanged_copies_and_remakes_stale_ones(tmp_path, fake_exports, capsys):
    released = [n for n, info in release.list_presets().items() if info.get("released")]
    if not released:
        pytest.skip("no released preset")
    release.refresh(tmp_path)
    assert fake_exports.count("saved_model") == fake_exports.count("tflite") == len(released)
    fake_exports.clear()
    release.refresh(tmp_path)
    assert fake_exports == [] and "unchanged, kept" in capsys.readouterr().out
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest[released[0]]["fingerprints"]["tflite"] = "from other sources"
    manifest_path.write_text(json.dumps(manifest))
    release.refresh(tmp_path)
    assert fake_exports == ["tflite"]
    fake_exports.clear()
    os.remove(tmp_path / manifest[released[0]]["tflite"])
    release.refresh(tmp_path)
    assert fake_exports == ["tflite"]
    fake_exports.clear()
    release.refresh(tmp_path, force=True)
    assert fake_exports.count("saved_model") == len(released)


def test_fingerprint_follows_settings_and_sources(monkeypatch):
    settings = {"size": [256, 256], "iterations": 8}
    preset = next(iter(release.list_presets().values()))["file"]
    base = release.fingerprint("tflite", preset, settings)
    assert base == release.fingerprint("tflite", preset, dict(settings))
    assert base != release.fingerprint("tflite", preset, {**settings, "iterations": 9})
    monkeypatch.setitem(release.SOURCES, "tflite", release.SOURCES["tflite"] + ("restore.py",))
    assert base != release.fingerprint("tflite", preset, settings)
