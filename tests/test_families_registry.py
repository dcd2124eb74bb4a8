"""Model families are registered as data: every built-in family is known as soon as ``clipgauge.encoders`` is
imported, whatever metrics a run uses; ``--model`` help and the unknown-model error are generated from the
registry; a broken plugin of either kind (``clipgauge.metrics``, ``clipgauge.models``) is the same one-line warning.

The end-to-end runs are fresh interpreters: in this process some other test may already have imported a metric
module, which is exactly what must not be needed.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from conftest import TOOLS, random_rgb

from clipgauge.cli import main
from clipgauge.encoders import ModelFamily, list_model_families, register_model_loader, registry
from clipgauge.encoders.families import BUILTIN_FAMILIES
from clipgauge.errors import ModelLoadError, PluginWarning
from clipgauge.metrics import registry as metric_registry
from clipgauge.sinks import read_results

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ["transformers", "open_clip", "longclip", "demo", "mclip", "pickscore", "hpsv2"]
GRAMMARS = ["a Hugging Face id (openai/clip-vit-large-patch14), hf:DIR", "open_clip:ARCH:PRETRAINED",
            "open_clip:hf-hub:ORG/NAME", "longclip:PATH", "demo", "mclip:ORG/NAME[,image=SPEC]",
            "pickscore:MODEL|PROCESSOR", "hpsv2:ARCH:CHECKPOINT"]
HELP_COMMANDS = ["score", "track", "classify", "retrieve", "validate", "backbones"]


@pytest.fixture
def clean_registries(monkeypatch):
    """Both registries as shipped, entry points not loaded yet; restored after the test."""
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    monkeypatch.setattr(registry, "_PLUGINS", {"loaded": False, "errors": []})
    monkeypatch.setattr(metric_registry, "_plugins_loaded", False)
    monkeypatch.setattr(metric_registry, "_registered", dict(metric_registry._registered))


def run_python(code: str, *, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_path), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def write_manifest(folder: Path, n: int = 4) -> Path:
    rows = []
    for i in range(n):
        random_rgb(70 + i, size=(90 + 17 * i, 120 - 9 * i)).save(folder / f"img_{i}.png")
        rows.append({"id": f"r{i}", "image": f"img_{i}.png", "prompt": ["a red fox", "a bowl of ramen"][i % 2]})
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------- known at import
def test_every_builtin_family_is_known_once_encoders_is_imported(tmp_path):
    code = textwrap.dedent("""
        import json, sys
        import clipgauge.encoders as encoders
        families = [f.family for f in encoders.list_model_families()]
        specs = [encoders.parse_model_spec(s).family for s in (
            "pickscore:org/model|org/processor", "hpsv2:ViT-H-14:org/repo/file.pt", "mclip:M-CLIP/LABSE-Vit-L-14",
            "longclip:/x/longclip-L.pt", "demo")]
        heavy = sorted(m for m in ("torch", "transformers", "open_clip", "torchvision") if m in sys.modules)
        print(json.dumps([families, specs, heavy, "clipgauge.metrics" in sys.modules]))
    """)
    out = run_python(code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    families, specs, heavy, metrics_imported = json.loads(out.stdout)
    assert families == FAMILIES
    assert specs == ["pickscore", "hpsv2", "mclip", "longclip", "demo"]
    assert heavy == [] and metrics_imported is False  # the table imports nothing: loaders are imported lazily


def test_the_table_is_data_and_a_family_can_be_registered_as_data(clean_registries):
    assert [f.family for f in BUILTIN_FAMILIES] == FAMILIES
    assert all(isinstance(f.load, str) and f.describe and f.grammar for f in BUILTIN_FAMILIES)
    registry.register_model_family(ModelFamily("lazy", "clipgauge.encoders.builtin:load_demo", "lazy:",
                                               usage="lazy:ANYTHING", describe="the demo CLIP, by a lazy path"))
    assert registry.parse_model_spec("lazy:x").family == "lazy"
    assert registry.resolve_encoder("lazy:x").spec == "demo"
    with pytest.raises(TypeError, match="neither callable nor a 'module:attribute' path"):
        register_model_loader("bad", "not a path", prefix="bad:")


# ------------------------------------------------------------------------------------- --model on a family
def test_a_pickscore_model_scores_the_clip_metric(tmp_path):
    """``--model "pickscore:M|P" --metric clip`` (no pickscore metric anywhere) on a PickScore-format model: a
    model folder with only config and weights, a separate processor folder. Its cosines are those the pickscore
    metric scales: pickscore = logit_scale.exp() x cosine."""
    import torch
    from tiny_clip import save_clip_tokenizer, save_tiny_hf_clip
    from transformers import CLIPModel

    model_dir = save_tiny_hf_clip(tmp_path / "model", seed=3, eos_token_id=2)
    model = CLIPModel.from_pretrained(model_dir)
    with torch.no_grad():
        model.logit_scale.fill_(4.4)
    for f in list(model_dir.iterdir()):
        f.unlink()
    model.save_pretrained(model_dir)
    processor_dir = tmp_path / "processor"
    save_clip_tokenizer(processor_dir)
    (processor_dir / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True, "resample": 3,
        "size": 224, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}), encoding="utf-8")
    manifest = write_manifest(tmp_path)
    spec = f"pickscore:{model_dir}|{processor_dir}"
    argv = ["score", str(manifest), "--model", spec, "--metric", "clip", "--device", "cpu",
            "--out", str(tmp_path / "clip.jsonl")]
    out = run_python(f"import sys\nfrom clipgauge.cli import main\nsys.exit(main({argv!r}))", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    clip = read_results(tmp_path / "clip.jsonl")
    summary = json.loads(Path(f"{tmp_path / 'clip.jsonl'}.summary.json").read_text())
    assert summary["provenance"]["model"]["spec"] == spec

    assert main(["score", str(manifest), "--metric", f"pickscore:model={model_dir},processor={processor_dir}",
                 "--device", "cpu", "--out", str(tmp_path / "pick.jsonl")]) == 0
    for a, b in zip(clip, read_results(tmp_path / "pick.jsonl"), strict=True):
        assert a["error"] is None and math.isfinite(a["cosine"])
        assert math.isclose(b["pickscore"], math.exp(4.4) * a["cosine"], rel_tol=1e-5, abs_tol=1e-9)


def test_an_hpsv2_model_scores_the_clip_metric(tmp_path):
    """``--model "hpsv2:ARCH:CHECKPOINT" --metric clip`` on a checkpoint in HPSv2's published format gives the
    cosines the hpsv2 metric gives."""
    open_clip = pytest.importorskip("open_clip")
    import torch
    from tiny_clip import register_tiny_openclip_arch

    arch = register_tiny_openclip_arch(tmp_path / "arch")
    torch.manual_seed(5)
    checkpoint = tmp_path / "HPS_v2_compressed.pt"
    torch.save({"state_dict": open_clip.create_model(arch).state_dict()}, checkpoint)
    manifest = write_manifest(tmp_path)
    argv = ["score", str(manifest), "--model", f"hpsv2:{arch}:{checkpoint}", "--metric", "clip", "--device", "cpu",
            "--out", str(tmp_path / "clip.jsonl")]
    code = (f"import sys\nsys.path.insert(0, {str(TOOLS)!r})\nfrom tiny_clip import register_tiny_openclip_arch\n"
            f"register_tiny_openclip_arch({str(tmp_path / 'arch')!r})\nfrom clipgauge.cli import main\n"
            f"sys.exit(main({argv!r}))")
    out = run_python(code, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert main(["score", str(manifest), "--metric", f"hpsv2:checkpoint={checkpoint},arch={arch}",
                 "--device", "cpu", "--out", str(tmp_path / "hps.jsonl")]) == 0
    for a, b in zip(read_results(tmp_path / "clip.jsonl"), read_results(tmp_path / "hps.jsonl"), strict=True):
        assert a["error"] is None and math.isfinite(a["cosine"])
        assert math.isclose(a["cosine"], b["hpsv2"], rel_tol=1e-5, abs_tol=1e-7)


# ------------------------------------------------------------------------------- generated from the registry
def _help(command: str) -> str:
    from click.testing import CliRunner

    from clipgauge.cli import cli

    result = CliRunner().invoke(cli, [command, "--help"], terminal_width=1000)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_model_help_lists_every_family(clean_registries, command):
    register_model_loader("mine", lambda spec, **options: None, prefix="mine:", usage="mine:ORG/NAME")
    text = _help(command)
    line = text[text.index("--model"):]
    for grammar in [*GRAMMARS, "mine:ORG/NAME"]:
        assert grammar in line, (command, grammar)


def test_the_unknown_model_error_lists_every_family(clean_registries, capsys, tmp_path, monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    register_model_loader("mine", lambda spec, **options: None, prefix="mine:")
    manifest = write_manifest(tmp_path, n=1)
    assert main(["score", str(manifest), "--model", "nope:x", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("clipgauge: error: unknown model 'nope:x': use "), err
    for grammar in GRAMMARS:
        assert grammar in err, grammar
    # families registered earlier in this process (the docs' examples) are listed too, before the newest
    assert "; also registered: " in err and err.rstrip().endswith("mine:..."), err
    with pytest.raises(ModelLoadError) as info:
        registry.parse_model_spec("nope:x")
    assert [f.grammar for f in list_model_families()][-1] == "mine:..." and "mine:..." in str(info.value)


def test_metrics_lists_the_families_with_their_grammar(capsys):
    assert main(["metrics", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    by_family = {m["family"]: m for m in models}
    assert [m["family"] for m in models][:len(FAMILIES)] == FAMILIES
    assert by_family["pickscore"]["usage"] == "pickscore:MODEL|PROCESSOR"
    assert by_family["hpsv2"]["prefix"] == "hpsv2:" and by_family["hpsv2"]["description"]


# ----------------------------------------------------------------------------------------- broken plugins
PLUGIN_MODULE = """
import numpy as np

from clipgauge.encoders import register_model_loader
from clipgauge.metrics import Column, Metric, MetricOutput, Need


class GoodPixel(Metric):
    name = "good_pixel"
    summary = "mean pixel value (a plugin that works)"

    def needs(self):
        return [Need("image")]

    def columns(self):
        return [Column("good_pixel", range=(0.0, 255.0), unit="pixel value", higher_is_better=None)]

    def compute(self, batch):
        images = batch.values[Need("image")]
        return MetricOutput({"good_pixel": np.array([np.asarray(im).mean() for im in images], dtype=np.float64)})


def register():
    register_model_loader("good_models", lambda spec, **options: None, prefix="good:", usage="good:NAME",
                          describe="a plugin family that works")


def failing_register():
    raise RuntimeError("model plugin bug")
"""

ENTRY_POINTS = """
[clipgauge.metrics]
good_pixel = cg_test_plugins:GoodPixel
broken_metric = cg_test_plugins_missing:Metric

[clipgauge.models]
good_models = cg_test_plugins:register
broken_models = cg_test_plugins:failing_register
"""

WARNING = re.compile(r"^entry point '(\w+)' \(([\w.:]+)\) of group (clipgauge\.\w+) skipped: (\w+): (.+)$")


def install_plugins(root: Path) -> Path:
    """A real installed distribution on *root*: a module and a ``.dist-info`` with its entry points."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cg_test_plugins.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    dist = root / "cg_test_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cg-test-plugins\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    return root


def test_a_broken_plugin_of_either_kind_is_the_same_one_line_warning(clean_registries, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(install_plugins(tmp_path / "site")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert "good_pixel" in metric_registry.available_metrics()  # the rest keeps working
        assert "good_models" in [f.family for f in list_model_families()]
    lines = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert len(lines) == 2, lines
    found = {WARNING.match(line).group(1, 2, 3, 4) for line in lines}
    assert found == {("broken_metric", "cg_test_plugins_missing:Metric", "clipgauge.metrics", "ModuleNotFoundError"),
                     ("broken_models", "cg_test_plugins:failing_register", "clipgauge.models", "RuntimeError")}
    assert registry.parse_model_spec("good:x").family == "good_models"
    with pytest.raises(ModelLoadError, match=r"not loaded: entry point 'broken_models' .*model plugin bug"):
        registry.parse_model_spec("other:x")


def test_broken_plugins_warn_in_one_line_each_on_the_command_line(tmp_path):
    site = install_plugins(tmp_path / "site")
    manifest = write_manifest(tmp_path, n=2)
    out = run_python("import sys\nfrom clipgauge.cli import main\nsys.exit(main(['metrics', '--json']))",
                     cwd=tmp_path, extra_path=site)
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert "good_pixel" in [m["name"] for m in listing["metrics"]]
    assert "good_models" in [m["family"] for m in listing["models"]]
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    for line, group in zip(sorted(lines), ["clipgauge.metrics", "clipgauge.models"], strict=True):
        assert line.startswith("clipgauge: warning: entry point 'broken_"), line
        assert WARNING.match(line[len("clipgauge: warning: "):]).group(3) == group
    # a run with the working metric plugin scores, warning about the broken ones
    argv = ["score", str(manifest), "--model", "demo", "--metric", "good_pixel", "--device", "cpu",
            "--out", str(tmp_path / "r.jsonl")]
    out = run_python(f"import sys\nfrom clipgauge.cli import main\nsys.exit(main({argv!r}))", cwd=tmp_path,
                     extra_path=site)
    assert out.returncode == 0, out.stderr
    assert all(r["good_pixel"] > 0 for r in read_results(tmp_path / "r.jsonl"))
    assert "clipgauge: warning: entry point 'broken_metric'" in out.stderr
