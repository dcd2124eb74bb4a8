"""Model specs are parsed once into a ModelSpec; loaders are registered (also through entry points); a hub model
that is not cached while the hub is unreachable is one line of clipgauge's and nothing else."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import pytest

from clipgauge.encoders import (
    ModelSpec,
    early_crop_plan,
    list_model_loaders,
    parse_model_spec,
    register_model_loader,
    registry,
    resolve_encoder,
)
from clipgauge.errors import ModelLoadError


@pytest.fixture
def clean_registry(monkeypatch):
    """The registry as shipped, restored after the test (entry points not loaded yet)."""
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    monkeypatch.setattr(registry, "_PLUGINS", {"loaded": False, "errors": []})
    return registry


# ------------------------------------------------------------------------------------------------ parsing
def test_every_accepted_form_parses_to_its_fields(tmp_path):
    folder = tmp_path / "my model"
    folder.mkdir()
    cases = {
        "demo": ModelSpec("demo", "demo"),
        "hf:openai/clip-vit-base-patch32": ModelSpec("transformers", "hf:openai/clip-vit-base-patch32",
                                                     source="openai/clip-vit-base-patch32"),
        f"hf:{folder}": ModelSpec("transformers", f"hf:{folder}", source=str(folder)),
        "hf:/not/there": ModelSpec("transformers", "hf:/not/there", source="/not/there"),  # the load says
        "openai/clip-vit-large-patch14": ModelSpec("transformers", "openai/clip-vit-large-patch14",
                                                   source="openai/clip-vit-large-patch14"),
        str(folder): ModelSpec("transformers", str(folder), source=str(folder)),
        "open_clip:ViT-B-32:laion2b_s34b_b79k": ModelSpec("open_clip", "open_clip:ViT-B-32:laion2b_s34b_b79k",
                                                          arch="ViT-B-32", pretrained="laion2b_s34b_b79k"),
        "open_clip:ViT-B-32:/ckpt/dir:with:colons.pt": ModelSpec(
            "open_clip", "open_clip:ViT-B-32:/ckpt/dir:with:colons.pt", arch="ViT-B-32",
            pretrained="/ckpt/dir:with:colons.pt"),
        "open_clip:hf-hub:timm/ViT-B-16-SigLIP": ModelSpec("open_clip", "open_clip:hf-hub:timm/ViT-B-16-SigLIP",
                                                           source="timm/ViT-B-16-SigLIP",
                                                           arch="hf-hub:timm/ViT-B-16-SigLIP"),
    }
    for text, expected in cases.items():
        assert parse_model_spec(text) == expected, text
        assert parse_model_spec(f"  {text}\n") == expected  # surrounding space is not part of the spec
        assert str(parse_model_spec(text)) == text


@pytest.mark.parametrize("text,message", [
    ("", "empty model spec"),
    ("   ", "empty model spec"),
    ("hf:", "hf: needs a hub id or a folder, e.g. hf:openai/clip-vit-base-patch32"),
    ("open_clip:ViT-B-32", "bad OpenCLIP spec 'open_clip:ViT-B-32': use open_clip:ARCH:PRETRAINED (a tag such as "
                           "laion2b_s34b_b79k, or a checkpoint path)"),
    ("open_clip::openai", "bad OpenCLIP spec 'open_clip::openai'"),
    ("open_clip:ViT-B-32:", "bad OpenCLIP spec 'open_clip:ViT-B-32:'"),
    ("open_clip:hf-hub:nope", "bad OpenCLIP hub spec 'open_clip:hf-hub:nope': use open_clip:hf-hub:ORG/NAME"),
    ("not a model!", "unknown model 'not a model!': use a Hugging Face id (openai/clip-vit-large-patch14), hf:DIR, "
                     "open_clip:ARCH:PRETRAINED, open_clip:hf-hub:ORG/NAME, longclip:PATH, demo, "
                     "mclip:ORG/NAME[,image=SPEC], pickscore:MODEL|PROCESSOR, or hpsv2:ARCH:CHECKPOINT"),
    ("mine:thing", "unknown model 'mine:thing'"),
])
def test_bad_forms_give_one_line(clean_registry, monkeypatch, text, message):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    with pytest.raises(ModelLoadError) as info:
        parse_model_spec(text)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelLoadError):
        resolve_encoder(text)  # the same errors from the one entry point
    assert early_crop_plan(text) is None  # a guess never raises


def test_parsing_imports_nothing_heavy():
    code = ("import sys\nfrom clipgauge.encoders import parse_model_spec, list_model_loaders, early_crop_plan\n"
            "parse_model_spec('open_clip:ViT-B-32:openai'); parse_model_spec('hf:x/y'); list_model_loaders()\n"
            "print(sorted(m for m in ('torch', 'transformers', 'open_clip', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------------------------- registry
class _FakeEncoder:
    def __init__(self, spec: ModelSpec, options: dict):
        self.spec, self.options = spec.text, options
        self.parsed = spec


def test_a_registered_prefix_is_resolved_by_its_loader(clean_registry):
    calls = []

    def load(spec, **options):
        calls.append(spec)
        return _FakeEncoder(spec, options)

    register_model_loader("mine", load, prefix="mine:", describe="my models: mine:NAME")
    assert ("mine", "mine:", "my models: mine:NAME") in list_model_loaders()
    assert parse_model_spec("mine:big/model") == ModelSpec("mine", "mine:big/model", source="big/model")
    enc = resolve_encoder("mine:big/model")
    assert isinstance(enc, _FakeEncoder) and enc.parsed.source == "big/model" and enc.options == {}
    assert resolve_encoder("mine:x", trust_remote_code=True).options == {"trust_remote_code": True}
    assert resolve_encoder(ModelSpec("mine", "built in code", source="x")).spec == "built in code"
    assert early_crop_plan("mine:x") is None  # no early plan registered
    with pytest.raises(ModelLoadError, match="names no model after 'mine:'"):
        parse_model_spec("mine:")
    # the unknown-model hint names registered prefixes
    with pytest.raises(ModelLoadError, match="also registered: .*mine:"):  # other tests may register more
        parse_model_spec("???")


def test_registration_rules(clean_registry):
    load = lambda spec, **options: _FakeEncoder(spec, options)  # noqa: E731
    with pytest.raises(ValueError, match="already used by the 'transformers'"):
        register_model_loader("other", load, prefix="hf:")
    for bad in ("", " x:", "a:b:", "a:b"):
        with pytest.raises(ValueError, match="bad prefix"):
            register_model_loader("other", load, prefix=bad)
    with pytest.raises(TypeError):
        register_model_loader("other", "not callable")
    # a word prefix selects exactly that word; custom parsing; the longest prefix wins
    register_model_loader("word", load, prefix="tiny", parse=lambda rest, text: ModelSpec("word", text, arch="t"))
    assert parse_model_spec("tiny") == ModelSpec("word", "tiny", arch="t")
    register_model_loader("oc2", load, prefix="open_clip2:")
    assert parse_model_spec("open_clip2:x").family == "oc2"
    assert parse_model_spec("open_clip:A:b").family == "open_clip"


def test_a_failing_third_party_loader_is_one_line(clean_registry):
    def load(spec, **options):
        raise FileNotFoundError("no such weights\nsecond line")

    register_model_loader("broken", load, prefix="broken:")
    with pytest.raises(ModelLoadError) as info:
        resolve_encoder("broken:x")
    assert str(info.value) == ("cannot load model 'broken:x' (broken loader): FileNotFoundError: no such weights "
                               "second line")


def test_entry_points_are_loaded_once_and_lazily(clean_registry, monkeypatch, tmp_path):
    (tmp_path / "clipgauge_plugin_for_tests.py").write_text(textwrap.dedent("""
        from clipgauge.encoders import ModelSpec, register_model_loader

        LOADS = []

        def load(spec, **options):
            LOADS.append(spec)
            return spec

        def register():
            register_model_loader("plugged", load, prefix="plugged:", describe="from an entry point",
                                  early_plan=lambda spec: "PLAN:" + spec.source)

        def broken():
            raise RuntimeError("plugin bug")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    group = registry.ENTRY_POINT_GROUP
    points = [importlib.metadata.EntryPoint("plugged", "clipgauge_plugin_for_tests:register", group),
              importlib.metadata.EntryPoint("broken", "clipgauge_plugin_for_tests:broken", group)]
    asked = []

    def entry_points(**kw):
        asked.append(kw)
        return points if kw.get("group") == group else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert parse_model_spec("demo").family == "demo"
    assert parse_model_spec("org/name").family == "transformers"
    assert asked == []  # built-in forms never look for plugins
    assert resolve_encoder("plugged:abc") == ModelSpec("plugged", "plugged:abc", source="abc")
    assert early_crop_plan("plugged:abc") == "PLAN:abc"
    assert ("plugged", "plugged:", "from an entry point") in list_model_loaders()
    with pytest.raises(ModelLoadError, match=r"not loaded: entry point 'broken' .*RuntimeError: plugin bug"):
        parse_model_spec("other:abc")
    assert asked == [{"group": group}]  # once


# ------------------------------------------------------------------------------- the hub cannot be reached
def test_uncached_hub_model_with_unreachable_hub_is_exactly_one_line(tmp_path):
    """A real subprocess of the console script, HF_HUB_OFFLINE unset: whether DNS fails at once or times out,
    huggingface_hub's own lines ('… thrown while requesting HEAD …', 'Retrying in 1s') never show."""
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "prompt": "x"}) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_ETAG_TIMEOUT="1", HF_HUB_DOWNLOAD_TIMEOUT="1",
               HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens there: refused at once, on any machine
    exe = os.path.join(os.path.dirname(sys.executable), "clipgauge")
    for endpoint in ("http://127.0.0.1:9", None):  # a refused connection; the real hub (DNS fails at once or not)
        if endpoint is None:
            env.pop("HF_ENDPOINT")
        proc = subprocess.run([exe, "score", str(tmp_path / "m.jsonl"), "--model", "clipgauge-tests/not-cached-x"],
                              capture_output=True, text=True, env=env, timeout=240)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("clipgauge: error: "), proc.stderr
        if endpoint is not None:
            assert lines[0].startswith("clipgauge: error: model 'clipgauge-tests/not-cached-x' is not in the local "
                                       "Hugging Face cache and the hub cannot be reached")
