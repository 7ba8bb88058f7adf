"""The registry file and its schema, the cache (own and shared), offline import, remove and verify."""

from __future__ import annotations

import copy
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

import mrsynth
from mrsynth import cli
from mrsynth.checkpoint import ModelInfo, save_checkpoint
from mrsynth.errors import MRSynthError
from mrsynth.models import load_model, pull, registry, resolve, sha256_of
from mrsynth.models.importing import import_model
from mrsynth.models.registry import parse_registry
from mrsynth.networks import HighResNet

MODELS = Path(mrsynth.__file__).parent / "models"
BUNDLED = MODELS / "gre-to-tse-sim.pt"


def _user_checkpoint(path: Path, name: str = "mine") -> Path:
    args = {"in_channels": 1, "out_channels": 1, "width": 2, "blocks_per_stage": 1}
    info = ModelInfo(
        name=name, architecture="HighResNet", arguments=args, inputs=["T1w"], output="T2w",
        voxel_size=[1.0, 1.0, 1.0], patch=[16, 16, 8], stride=[8, 8, 4],
    )  # fmt: skip
    return save_checkpoint(path, HighResNet(**args), info)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> bytes:
    """The checkpoint of the downloadable test model ``remote``."""
    return _user_checkpoint(tmp_path_factory.mktemp("remote") / "remote.pt", "remote").read_bytes()


@pytest.fixture
def env(data, tmp_path, monkeypatch):
    """A registry adding the downloadable model ``remote`` (a file:// URL), and an empty cache."""
    served = tmp_path / "server" / "remote.pt"
    served.parent.mkdir()
    served.write_bytes(data)
    entry = {
        "name": "remote", "version": "1", "task": "contrast-synthesis", "inputs": ["T1w"], "output": "T2w",
        "voxel_size": [1.0, 1.0, 1.0], "orientation": "RAS", "patch": [16, 16, 8], "stride": [8, 8, 4],
        "mode": "paper", "urls": [served.as_uri()], "sha256": sha256_of(served), "size": len(data),
        "licence": "CC-BY-4.0", "card_text": "# remote\n\nServed by file://.",
    }  # fmt: skip
    reg = tmp_path / "extra.json"
    reg.write_text(json.dumps({"schema_version": 2, "models": [entry]}))
    monkeypatch.setenv("MRSYNTH_REGISTRY", str(reg))
    monkeypatch.setenv("MRSYNTH_MODELS_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MRSYNTH_MODELS_PATH", raising=False)
    monkeypatch.delenv("MRSYNTH_MODEL_MIRROR", raising=False)
    return tmp_path / "cache"


def test_bundled_registry_follows_its_schema():
    entries = registry()
    entry = entries["gre-to-tse-sim"]
    assert entry.bundled and entry.orientation == "any" and entry.mode == "fast" and entry.patch == [56, 56, 32]
    assert sha256_of(entry.path()) == entry.sha256 and "simulated" in entry.card_markdown()
    schema = json.loads((MODELS / "registry.schema.json").read_text())
    optional = {"urls", "card_text", "parameters", "outputs"}
    assert set(schema["$defs"]["model"]["properties"]) == set(entry.to_dict()) | optional


def test_the_schema_uses_only_keywords_the_checker_knows():
    known = {"$schema", "$defs", "$ref", "title", "description", "type", "required", "additionalProperties"}
    known |= {"properties", "items", "minItems", "maxItems", "minLength", "pattern", "enum", "const", "minimum"}
    known |= {"exclusiveMinimum"}

    def keywords(schema: dict) -> set[str]:
        found = set(schema)
        for key in ("properties", "$defs"):
            for sub in schema.get(key, {}).values():
                found |= keywords(sub)
        return found | (keywords(schema["items"]) if "items" in schema else set())

    assert keywords(json.loads((MODELS / "registry.schema.json").read_text())) <= known


@pytest.mark.parametrize("action", ["list", "info", "show", "pull", "import", "remove", "verify"])
def test_every_models_action_has_help(action, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["models", action, "--help"])
    usage = "info" if action == "show" else action  # show is an alias of info
    assert exit_info.value.code == 0 and f"usage: mrsynth models {usage}" in capsys.readouterr().out


GOOD = json.loads((MODELS / "registry.json").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(schema_version=3), "schema_version 3 but this mrsynth reads version 2: update mrsynth"),
        (lambda r: r["models"][0].pop("sha256"), "models\\[0\\] lacks the required field 'sha256'"),
        (lambda r: r["models"][0].update(sha256="abc"), 'models\\[0\\].sha256 "abc" does not match'),
        (lambda r: r["models"][0].update(voxel_size=[1, 1]), "voxel_size must have exactly 3 items, not 2"),
        (lambda r: r["models"][0].update(voxel_size=[1, 0, 1]), "voxel_size\\[1\\] must be greater than 0"),
        (lambda r: r["models"][0].update(patch=[56, 56.5, 32]), "patch\\[1\\] must be of type integer"),
        (lambda r: r["models"][0].update(mode="slow"), 'mode must be one of "fast", "paper", "smooth"'),
        (lambda r: r["models"][0].update(orientation="RAA"), 'orientation "RAA" does not match'),
        (lambda r: r["models"][0].update(name="../evil"), 'name "../evil" does not match'),
        (lambda r: r["models"][0].update(urls=["https://example.org/m.pt"]), "exactly one of 'file' .bundled."),
        (lambda r: r["models"][0].update(card_text="inline"), "exactly one of 'card' .a file."),
        (lambda r: r["models"][0].update(colour="blue"), "unknown field 'colour'"),
        (lambda r: r["models"].append(r["models"][0]), "the name gre-to-tse-sim appears twice"),
        (lambda r: r["models"][0].update(outputs=["TSE"]), "outputs must have at least 2 items, not 1"),
        (lambda r: r["models"][0].update(outputs=["X", "Y"]), "outputs .* do not start with its output"),
    ],
)
def test_invalid_registries_are_refused_clearly(change, message):
    bad = copy.deepcopy(GOOD)
    change(bad)
    with pytest.raises(MRSynthError, match=f"registry test.json (has )?.*{message}"):
        parse_registry(bad, MODELS, "test.json")


def test_extra_registry_errors_name_the_file(tmp_path, monkeypatch):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    monkeypatch.setenv("MRSYNTH_REGISTRY", str(broken))
    with pytest.raises(MRSynthError, match="broken.json is not valid JSON"):
        registry()
    monkeypatch.setenv("MRSYNTH_REGISTRY", str(tmp_path / "absent.json"))
    with pytest.raises(MRSynthError, match="absent.json cannot be read"):
        registry()


def test_file_url_download_and_resolution_order(env, data):
    with pytest.raises(MRSynthError, match="model remote is not downloaded: run `mrsynth models pull remote` .or"):
        load_model("remote")
    assert resolve("remote", download=True) == env / "remote.pt"
    assert load_model("remote").info.name == "remote"
    (env / "remote.pt").write_bytes(data[:1000])  # damaged in place
    with pytest.raises(MRSynthError, match="fails its sha256 check .damaged or another version.: run `mrsynth"):
        resolve("remote")
    assert pull(registry()["remote"]).read_bytes() == data  # pull replaces it
    assert resolve(BUNDLED) == BUNDLED  # a file path works as before


def test_registry_entry_must_agree_with_its_checkpoint(env, tmp_path, monkeypatch):
    reg = json.loads(Path(os.environ["MRSYNTH_REGISTRY"]).read_text())
    reg["models"][0]["inputs"] = ["T2w"]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(reg))
    monkeypatch.setenv("MRSYNTH_REGISTRY", str(wrong))
    resolve("remote", download=True)
    with pytest.raises(MRSynthError, match=r"registry says model remote maps \['T2w'\] -> \['T2w'\] but its"):
        load_model("remote")


def test_a_two_output_model_lists_every_output(monkeypatch, tmp_path, capsys):
    entry = registry()["superres-x4-dess-sim"]
    assert entry.all_outputs == ["DESS_S1", "DESS_S2"]
    assert load_model("superres-x4-dess-sim").info.outputs == entry.all_outputs
    assert cli.main(["models", "list"]) == 0
    assert "DESS_S1 (thick) + DESS_S2 (thick) -> DESS_S1 + DESS_S2" in capsys.readouterr().out
    swapped = copy.deepcopy(GOOD)
    listed = next(m for m in swapped["models"] if m["name"] == "superres-x4-dess-sim")
    listed.update(output="DESS_S2", outputs=["DESS_S2", "DESS_S1"])
    shutil.copyfile(MODELS / listed["file"], tmp_path / listed["file"])
    (tmp_path / "swapped.json").write_text(json.dumps(swapped))
    monkeypatch.setenv("MRSYNTH_REGISTRY", str(tmp_path / "swapped.json"))
    with pytest.raises(MRSynthError, match="registry says model superres-x4-dess-sim maps"):
        load_model("superres-x4-dess-sim")


def test_shared_read_only_cache(env, data, tmp_path, monkeypatch, capsys):
    shared = tmp_path / "site-cache"
    shared.mkdir()
    (shared / "remote.pt").write_bytes(data)
    monkeypatch.setenv("MRSYNTH_MODELS_PATH", str(shared))
    assert resolve("remote") == shared / "remote.pt"
    assert pull(registry()["remote"]) == shared / "remote.pt" and not env.exists()  # nothing downloaded
    assert cli.main(["models", "list"]) == 0
    assert f"in shared cache {shared}" in capsys.readouterr().out
    assert cli.main(["models", "remove", "remote"]) == 2
    assert f"is in the shared cache {shared}, which mrsynth does not change" in capsys.readouterr().err


def test_import_of_a_registered_model_by_hand(env, data, tmp_path, capsys):
    carried = tmp_path / "usb" / "whatever-name.pt"
    carried.parent.mkdir()
    carried.write_bytes(data)
    assert cli.main(["models", "import", str(carried)]) == 0
    assert "remote: verified against the registry" in capsys.readouterr().out
    assert resolve("remote") == env / "remote.pt"
    with zipfile.ZipFile(tmp_path / "usb" / "model.zip", "w") as archive:
        archive.write(carried, "folder/remote.pt")
        archive.writestr("folder/remote.md", "# card")
    (env / "remote.pt").unlink()
    assert import_model(tmp_path / "usb" / "model.zip", registry()).verified
    assert (env / "remote.pt").read_bytes() == data
    assert import_model(BUNDLED, registry()).path == BUNDLED  # bundled: nothing to store


def test_import_refuses_an_altered_registered_model(env, data, tmp_path, monkeypatch):
    altered = tmp_path / "remote.pt"
    altered.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    monkeypatch.setattr("torch.load", lambda *a, **k: pytest.fail("an altered registered model reached torch.load"))
    with pytest.raises(MRSynthError, match="is not the registered model remote: its sha256 differs"):
        import_model(altered, registry())
    assert not (env / "remote.pt").exists()


def test_import_of_a_user_model(env, tmp_path, capsys):
    own = _user_checkpoint(tmp_path / "trained.pt")
    with zipfile.ZipFile(tmp_path / "mine.zip", "w") as archive:
        archive.write(own, "trained.pt")
        archive.writestr("card.md", "# My model\n\nTrained on our scanner.")
    with pytest.warns(UserWarning, match="not in the registry: imported as user model mine, unverified"):
        imported = import_model(tmp_path / "mine.zip", registry())
    assert imported.path == env / "mine.pt" and not imported.verified
    assert load_model("mine").info.inputs == ["T1w"]
    assert cli.main(["models", "list"]) == 0
    assert "user model (unverified)" in capsys.readouterr().out
    assert cli.main(["models", "info", "mine"]) == 0
    out = capsys.readouterr().out
    assert "a user model (unverified)" in out and "Trained on our scanner." in out
    other = _user_checkpoint(tmp_path / "other.pt")  # same name, other weights
    with pytest.raises(MRSynthError, match="a different user model named mine is already in the cache"):
        import_model(other, registry())
    assert cli.main(["models", "verify"]) == 0
    assert cli.main(["models", "remove", "mine"]) == 0
    assert not (env / "mine.pt").exists() and not (env / "mine.md").exists()


@pytest.mark.parametrize(
    "name, make, message",
    [
        ("bad.pt", lambda p: p.write_text("hello"), "neither a registered model nor an MRSynth checkpoint"),
        ("bad.pt", lambda p: None, "does not exist"),
        ("bad.zip", lambda p: zipfile.ZipFile(p, "w").close(), "holds 0 .pt and 0 .md files"),
        ("bad.zip", lambda p: p.write_bytes(b"PK\x03\x04 cut short"), "is not a readable zip file"),
    ],
)
def test_import_of_bad_files(env, tmp_path, name, make, message):
    bad = tmp_path / name
    make(bad)
    with pytest.raises(MRSynthError, match=message):
        import_model(bad, registry())
    assert not list((env / ".partial").glob("*.part"))  # nothing staged is left behind


def test_remove_and_verify(env, data, capsys):
    assert cli.main(["models", "remove", "gre-to-tse-sim"]) == 2
    assert "bundled with mrsynth and cannot be removed" in capsys.readouterr().err
    assert cli.main(["models", "remove", "remote"]) == 2
    assert "model remote is not downloaded: nothing to remove" in capsys.readouterr().err
    pull(registry()["remote"])
    assert cli.main(["models", "verify"]) == 0
    (env / "remote.pt").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert cli.main(["models", "verify"]) == 1
    captured = capsys.readouterr()
    stored = sum(entry.bundled for entry in registry().values()) + 1  # every bundled model, and remote
    assert "remote" in captured.out and "FAILS its sha256/size check" in captured.out
    assert f"1 of {stored} files failed" in captured.err
    assert cli.main(["models", "remove", "remote"]) == 0
    assert not (env / "remote.pt").exists()


def test_info_and_its_show_alias(env, capsys):
    assert cli.main(["models", "info", "remote"]) == 0
    out = capsys.readouterr().out
    assert "remote (version 1) - not downloaded" in out and "Served by file://." in out and "orientation: RAS" in out
    assert cli.main(["models", "show", "gre-to-tse-sim", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["state"] == "bundled" and described["registry"]["stride"] == [18, 18, 4]
    assert cli.main(["models", "info", str(BUNDLED)]) == 0  # a checkpoint file is described by its own info
    out = capsys.readouterr().out
    assert "file of registered model gre-to-tse-sim (verified)" in out and "inputs, in order: GE_aOP, GE_aIP" in out


def test_bundling_installs_a_checkpoint_and_adds_or_replaces_its_entry(tmp_path, monkeypatch):
    from mrsynth.models import bundling, resolve, sha256_of

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "registry.json").write_text(json.dumps({"schema_version": 2, "models": []}), encoding="utf-8")
    monkeypatch.setattr(bundling, "MODELS", folder)
    source = Path(resolve("gre-to-tse-sim"))
    target = bundling.install(source)
    assert target == folder / "gre-to-tse-sim.pt" and sha256_of(target) == sha256_of(source)
    (folder / "gre-to-tse-sim.md").write_text("card", encoding="utf-8")
    first = bundling.register(target, "contrast-synthesis")
    bundling.register(target, "contrast-synthesis", mode="paper", licence="MIT")
    models = json.loads((folder / "registry.json").read_text(encoding="utf-8"))["models"]
    assert len(models) == 1 and models[0]["mode"] == "paper" and models[0]["licence"] == "MIT"
    assert first["sha256"] == sha256_of(source) and first["size"] == source.stat().st_size
    assert first["inputs"] == ["GE_aOP", "GE_aIP"] and first["card"] == "gre-to-tse-sim.md"
