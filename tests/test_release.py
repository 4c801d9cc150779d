"""The release tool re-exports a copy only when what makes it changed (the preset, the
settings, the versions, or the sources the export runs), and removes the copies the
release no longer holds."""

import json
import os

import pytest

from deepam_tf.export import release
from deepam_tf.restore import blind_routes


@pytest.fixture
def fake_exports(monkeypatch):
    calls = []

    def saved_model(model, folder, name, version, above=()):
        calls.append(("saved_model", model, [(top, routed) for top, routed in above]))
        os.makedirs(os.path.join(folder, name, str(version)))
        open(os.path.join(folder, name, str(version), "saved_model.pb"), "w").close()

    def tflite(model, path, size, iterations, overwrite):
        calls.append(("tflite", model))
        open(path, "w").close()

    monkeypatch.setattr(release, "export_saved_model", saved_model)
    monkeypatch.setattr(release, "export_tflite", tflite)
    monkeypatch.setattr(release, "load_preset", lambda name: name)
    return calls


def _kinds(calls):
    return [call[0] for call in calls]


def test_refresh_keeps_unchanged_copies_and_remakes_stale_ones(tmp_path, fake_exports, capsys):
    released = sorted(n for n, info in release.list_presets().items() if info.get("released"))
    if not released:
        pytest.skip("no released preset")
    release.refresh(tmp_path)
    assert _kinds(fake_exports).count("tflite") == len(released)
    # The SavedModel routes each σ to the blind preset denoise's "auto" takes.
    routes = blind_routes("denoise")
    assert ("saved_model", routes[0][1], [(top, name) for (top, _), (_, name) in zip(routes, routes[1:])]) \
        in fake_exports
    fake_exports.clear()
    release.refresh(tmp_path)
    assert fake_exports == [] and "unchanged, kept" in capsys.readouterr().out
    manifest_path = tmp_path / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tflite"][released[0]]["fingerprint"] = "from other sources"
    manifest_path.write_text(json.dumps(manifest))
    release.refresh(tmp_path)
    assert fake_exports == [("tflite", released[0])]
    fake_exports.clear()
    os.remove(tmp_path / manifest["tflite"][released[0]]["path"])
    release.refresh(tmp_path)
    assert fake_exports == [("tflite", released[0])]
    fake_exports.clear()
    release.refresh(tmp_path, force=True)
    assert _kinds(fake_exports).count("saved_model") == len(release.SAVED_MODELS)


def test_refresh_removes_copies_no_longer_released(tmp_path, fake_exports, monkeypatch, capsys):
    release.refresh(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    name = next(iter(manifest["tflite"]))
    presets = release.list_presets()
    monkeypatch.setattr(release, "list_presets",
                        lambda: {**presets, name: {k: v for k, v in presets[name].items() if k != "released"}})
    monkeypatch.setattr(release, "SAVED_MODELS", {})
    release.refresh(tmp_path)
    assert not (tmp_path / manifest["tflite"][name]["path"]).exists()
    assert not (tmp_path / "saved_model" / "denoise").exists()
    assert "no longer released, removed" in capsys.readouterr().out
    assert name not in json.loads((tmp_path / "manifest.json").read_text())["tflite"]


def test_fingerprint_follows_settings_and_sources(monkeypatch):
    settings = {"size": [256, 256], "iterations": 8}
    presets = [info["file"] for info in release.list_presets().values() if "file" in info]
    base = release.fingerprint("tflite", presets[0], settings)
    assert base == release.fingerprint("tflite", [presets[0]], dict(settings))
    assert base != release.fingerprint("tflite", presets[0], {**settings, "iterations": 9})
    assert base != release.fingerprint("tflite", presets[:2], settings)
    monkeypatch.setitem(release.SOURCES, "tflite", release.SOURCES["tflite"] + ("restore.py",))
    assert base != release.fingerprint("tflite", presets[0], settings)
