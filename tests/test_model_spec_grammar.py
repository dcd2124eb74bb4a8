"""One model-spec grammar: ``--model`` and every metric option that names a model, a processor or a weight file
(``pickscore:model=``/``processor=``, ``aesthetic:model=``/``head=``, ``hpsv2:checkpoint=``, ``clip:model=`` …) are
parsed by the encoders registry (:func:`parse_model_option`), and what they name is loaded by transformers' own
``from_pretrained``: a processor folder written by transformers 5 (``processor_config.json`` with the image
processor nested inside, no ``preprocessor_config.json``) and one in transformers 4's layout both load, and give
the same pixels and scores.

Everything is built here with small random models: the transformers-4 layout is written by hand with the file
names and keys of the published ``openai/clip-vit-*`` repos (transformers 4 cannot be installed beside 5).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_rgb
from PIL import Image
from tiny_clip import save_tiny_hf_clip, write_clip_tokenizer_files

from clipgauge.cli import main
from clipgauge.encoders import early_crop_plan, parse_model_spec, registry, resolve_encoder
from clipgauge.encoders.registry import ANY_MODEL, TRANSFORMERS, WEIGHT_FILE, parse_model_option
from clipgauge.errors import ModelLoadError
from clipgauge.metrics.pickscore import pickscore_spec
from clipgauge.metrics.registry import available_metrics, metric_class
from clipgauge.sinks import read_results

SPECIALS = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>"}
#: transformers 4's CLIPProcessor.save_pretrained: the image processor in preprocessor_config.json (the keys of
#: openai/clip-vit-base-patch16's), the slow tokenizer's files beside it
V4_PREPROCESSOR = {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
                   "do_normalize": True, "do_rescale": True, "do_resize": True,
                   "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
                   "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "CLIPProcessor",
                   "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224}}
V4_TOKENIZER = {"add_prefix_space": False, "clean_up_tokenization_spaces": True, "do_lower_case": True,
                "errors": "replace", "model_max_length": 77, "processor_class": "CLIPProcessor",
                "tokenizer_class": "CLIPTokenizer", **SPECIALS}


def write_v4_processor(folder: Path) -> Path:
    """A processor folder as transformers 4 wrote it: preprocessor_config.json, tokenizer_config.json,
    special_tokens_map.json, vocab.json, merges.txt."""
    write_clip_tokenizer_files(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(V4_PREPROCESSOR, indent=2), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(V4_TOKENIZER, indent=2), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(SPECIALS, indent=2), encoding="utf-8")
    return folder


def save_v5_processor(folder: Path) -> Path:
    """A processor folder written by the installed transformers (5): ``CLIPProcessor.save_pretrained``."""
    from transformers import CLIPImageProcessorPil, CLIPProcessor, CLIPTokenizer

    source = write_v4_processor(folder.parent / f"{folder.name}-source")
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(**{k: V4_PREPROCESSOR[k] for k in (
        "crop_size", "size", "image_mean", "image_std", "resample")}), tokenizer=CLIPTokenizer.from_pretrained(source))
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    """model: a CLIPModel folder of config.json and weights only (PickScore_v1's kind); v4 / v5: processor folders
    in each layout; full_v4 / full_v5: the model with the processor of each layout beside it (``--model`` folders);
    head: a v1 aesthetic head for the model's 16-wide embeddings."""
    from transformers import CLIPModel

    root = tmp_path_factory.mktemp("grammar")
    model = CLIPModel.from_pretrained(save_tiny_hf_clip(root / "tiny", seed=7)).eval()
    with torch.no_grad():
        model.logit_scale.fill_(3.1)
    out = {"model": root / "model", "v4": write_v4_processor(root / "v4"), "v5": save_v5_processor(root / "v5")}
    model.save_pretrained(out["model"])
    assert sorted(p.name for p in out["v5"].iterdir()) == ["processor_config.json", "tokenizer.json",
                                                          "tokenizer_config.json"]  # what transformers 5 writes
    for layout in ("v4", "v5"):
        full = root / f"full_{layout}"
        model.save_pretrained(full)
        for f in out[layout].iterdir():
            (full / f.name).write_bytes(f.read_bytes())
        out[f"full_{layout}"] = full
    g = torch.Generator().manual_seed(0)
    out["head"] = root / "head" / "sa_0_4_vit_b_32_linear.pth"
    out["head"].parent.mkdir()
    torch.save({"weight": torch.randn(1, 16, generator=g), "bias": torch.tensor([5.0])}, out["head"])
    out["empty"] = root / "empty"
    out["empty"].mkdir()
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("grammar_images")
    rows = []
    for i in range(4):
        random_rgb(300 + i, size=(90 + 30 * i, 160 - 17 * i)).save(folder / f"img_{i}.png")
        rows.append({"id": f"r{i}", "image": f"img_{i}.png", "prompt": ["a cat", "two dogs"][i % 2]})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def run(capsys, folder: Path, out: Path, *metrics: str, model: str = "demo") -> tuple[int, str]:
    argv = ["score", str(folder / "manifest.jsonl"), "--model", model, "--device", "cpu", "--batch-size", "2",
            "--out", str(out)]
    for m in metrics:
        argv += ["--metric", m]
    code = main(argv)
    return code, capsys.readouterr().err.strip()


def scores(capsys, folder: Path, out: Path, column: str, *metrics: str, model: str = "demo") -> np.ndarray:
    code, err = run(capsys, folder, out, *metrics, model=model)
    assert code == 0, err
    rows = read_results(out)
    assert all(r["error"] is None for r in rows), rows
    return np.array([r[column] for r in rows])


def one_line(capsys, folder: Path, tmp_path: Path, *metrics: str, model: str = "demo") -> str:
    code, err = run(capsys, folder, tmp_path / "bad.jsonl", *metrics, model=model)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- processors of transformers 4 and 5
def test_pickscore_takes_a_processor_saved_by_transformers_5(capsys, dirs, images, tmp_path):
    model = dirs["model"]
    v5 = scores(capsys, images, tmp_path / "v5.jsonl", "pickscore", f"pickscore:model={model},processor={dirs['v5']}")
    v4 = scores(capsys, images, tmp_path / "v4.jsonl", "pickscore", f"pickscore:model={model},processor={dirs['v4']}")
    np.testing.assert_array_equal(v5, v4)

    # the same pixels as transformers' own processor of each folder (the PIL one: the original CLIP recipe)
    from transformers import CLIPImageProcessorPil, CLIPProcessor

    picture = Image.open(images / "img_1.png").convert("RGB")
    for layout in ("v4", "v5"):
        encoder = resolve_encoder(pickscore_spec(str(model), str(dirs[layout])))
        want = CLIPImageProcessorPil.from_pretrained(dirs[layout])(images=picture, return_tensors="pt")
        torch.testing.assert_close(encoder.preprocess(picture), want["pixel_values"][0], rtol=0, atol=0)
        assert isinstance(CLIPProcessor.from_pretrained(dirs[layout]), CLIPProcessor)  # transformers loads both

    # the processor file hashed for the record is the one transformers read
    summary = json.loads(Path(f"{tmp_path / 'v5.jsonl'}.summary.json").read_text())
    files = {f["role"]: f["file"] for f in summary["provenance"]["metrics"]["pickscore"]["files"]}
    assert files["processor_config"] == str(dirs["v5"] / "processor_config.json")


def test_the_early_plan_reads_both_layouts_without_transformers(dirs):
    """The crop plan guessed before the model loads (images decode meanwhile) is read from the nested
    processor_config.json too, equals the loaded processor's, and needs no transformers import."""
    plans = {layout: early_crop_plan(f"hf:{dirs[f'full_{layout}']}") for layout in ("v4", "v5")}
    assert plans["v5"] is not None and plans["v5"] == plans["v4"]
    assert early_crop_plan(pickscore_spec(str(dirs["model"]), str(dirs["v5"]))) == plans["v5"]
    assert early_crop_plan(pickscore_spec(f"hf:{dirs['model']}", f"hf:{dirs['v5']}")) == plans["v5"]
    assert resolve_encoder(f"hf:{dirs['full_v5']}").crop_plan == plans["v5"]
    code = ("import sys\nfrom clipgauge.encoders import early_crop_plan\n"
            f"print(early_crop_plan({json.dumps('hf:' + str(dirs['full_v5']))}) is not None, "
            "'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stderr


def test_model_folders_of_both_layouts_score_alike(capsys, dirs, images, tmp_path):
    v5 = scores(capsys, images, tmp_path / "v5.jsonl", "cosine", "clip", model=f"hf:{dirs['full_v5']}")
    v4 = scores(capsys, images, tmp_path / "v4.jsonl", "cosine", "clip", model=str(dirs["full_v4"]))
    np.testing.assert_array_equal(v5, v4)


# ----------------------------------------------------------------------------------- the forms metric options take
def test_pickscore_model_takes_hf_prefix(capsys, dirs, images, tmp_path):
    plain = scores(capsys, images, tmp_path / "plain.jsonl", "pickscore",
                   f"pickscore:model={dirs['model']},processor={dirs['v4']}")
    prefixed = scores(capsys, images, tmp_path / "hf.jsonl", "pickscore",
                      f"pickscore:model=hf:{dirs['model']},processor=hf:{dirs['v5']}")
    np.testing.assert_array_equal(plain, prefixed)
    demo = scores(capsys, images, tmp_path / "demo.jsonl", "pickscore", "pickscore:model=demo,processor=demo")
    assert np.isfinite(demo).all()


def test_aesthetic_model_and_head_take_hf_prefix(capsys, dirs, images, tmp_path):
    head = dirs["head"]
    plain = scores(capsys, images, tmp_path / "plain.jsonl", "aesthetic",
                   f"aesthetic:model={dirs['full_v4']},head={head}")
    prefixed = scores(capsys, images, tmp_path / "hf.jsonl", "aesthetic",
                      f"aesthetic:model=hf:{dirs['full_v5']},head=hf:{head}")
    np.testing.assert_array_equal(plain, prefixed)


def _needed(cls) -> dict[str, str]:
    """Options a metric cannot be built without (a column name, labels)."""
    return {k: v for k, v in (("column", "refs"), ("labels", "cat,dog")) if k in cls.options}


def test_every_model_option_takes_the_one_grammar(dirs, monkeypatch):
    """Every metric option that names a model, a processor or a weight file is declared in ``model_options``
    and parsed by the registry's one parser: the same forms as ``--model`` where they apply, a one-line refusal
    naming the option and the forms it takes where they do not."""
    declared = {}
    for name in available_metrics():
        cls = metric_class(name)
        for option, text in cls.options.items():
            if option in ("model", "processor", "checkpoint", "head") or "model spec" in text.lower():
                assert option in cls.model_options, f"{name}:{option} names a model but is not in model_options"
        declared.update({(name, option): takes for option, takes in cls.model_options.items()})
    assert {("pickscore", "model"), ("pickscore", "processor"), ("aesthetic", "model"), ("aesthetic", "head"),
            ("hpsv2", "checkpoint"), ("hpsv21", "checkpoint"), ("clip", "model"), ("clip_iqa", "model"),
            ("clip_i", "model"), ("refclip_s", "model"), ("zeroshot", "model"), ("clip_chunks", "model")} <= set(
        declared)

    folder, file = dirs["full_v4"], dirs["head"]
    forms = {"hub id": "org/name", "hf: hub id": "hf:org/name", "hf: folder": f"hf:{folder}", "folder": str(folder),
             "open_clip": "open_clip:ViT-B-32:openai", "open_clip hub": "open_clip:hf-hub:org/name", "demo": "demo",
             "file": str(file), "hf: file": f"hf:{file}", "hub file": "org/name/file.pt",
             "hf: hub file": "hf:org/name/file.pt"}
    model_forms = {"hub id", "hf: hub id", "hf: folder", "folder", "open_clip", "open_clip hub", "demo"}
    file_forms = {"file", "hf: file", "hub file", "hf: hub file"}
    # (accepted, refused) per kind; "hf:org/name/file.pt" parses as a model (hf: takes any hub id or path, and
    # the load says when there is none), so it is neither for a model option
    kinds = {ANY_MODEL: (model_forms, {"file", "hf: file", "hub file"}),
             TRANSFORMERS: (model_forms - {"open_clip", "open_clip hub"},
                            {"open_clip", "open_clip hub", "file", "hf: file", "hub file"}),
             WEIGHT_FILE: (file_forms, model_forms),
             WEIGHT_FILE + ("demo",): (file_forms | {"demo"}, model_forms - {"demo"})}

    calls = []
    real = registry.parse_model_option
    monkeypatch.setattr(registry, "parse_model_option", lambda *a, **k: calls.append(a[:2]) or real(*a, **k))
    for (name, option), takes in declared.items():
        cls = metric_class(name)
        accepted, refused = kinds[takes]
        for form, text in forms.items():
            calls.clear()
            if form in accepted:
                metric = cls(**_needed(cls), **{option: text})
                assert (text, f"{name}:{option}") in calls, (name, option, form)
                got = metric.model_specs[option]
                assert got == real(text, f"{name}:{option}", takes)
                if form in model_forms:
                    assert got == parse_model_spec(text)  # exactly what --model makes of it
            elif form in refused:
                with pytest.raises(ModelLoadError) as info:
                    cls(**_needed(cls), **{option: text})
                message = str(info.value)
                assert "\n" not in message and message.startswith(f"{name}:{option}={text}: "), message
                assert f" {option}= takes " in message, message


def test_refusals_are_one_line_naming_the_option(capsys, dirs, images, tmp_path):
    empty, model, nothing, oc = dirs["empty"], dirs["model"], tmp_path / "nothing", "open_clip:ViT-B-32:openai"
    cases = {
        f"pickscore:model={model},processor={empty}": f"pickscore:processor={empty}: ",
        f"pickscore:model={empty},processor={dirs['v5']}": f"pickscore:model={empty}: ",
        f"pickscore:model={model},processor={oc}": f"pickscore:processor={oc}: names an OpenCLIP model; processor= ",
        f"pickscore:model=hf:{nothing},processor={dirs['v5']}": f"pickscore:model=hf:{nothing}: ",
        f"clip:model={empty}": f"clip:model={empty}: ",
        f"aesthetic:model={dirs['full_v4']},head={empty}": f"aesthetic:head={empty}: ",
        f"hpsv2:checkpoint={empty}": f"hpsv2:checkpoint={empty}: ",
        "hpsv2:checkpoint=xswu/HPSv2": "hpsv2:checkpoint=xswu/HPSv2: ",
    }
    for metric, start in cases.items():
        err = one_line(capsys, images, tmp_path, metric)
        assert start in err, err
    # the library's own reason is kept (what transformers misses in an empty folder)
    err = one_line(capsys, images, tmp_path, f"pickscore:model={empty},processor={dirs['v5']}")
    assert "cannot load a transformers CLIP model" in err and f"found in directory {empty}" in err, err
    err = one_line(capsys, images, tmp_path, f"pickscore:model={model},processor={empty}")
    assert f"Can't load image processor for '{empty}'" in err, err
    # a bad run model stays the run's own error
    err = one_line(capsys, images, tmp_path, "clip", model="nope")
    assert err.startswith("clipgauge: error: unknown model 'nope': use a Hugging Face id"), err


def test_an_uncached_hub_id_offline_fails_fast_in_one_line(capsys, images, monkeypatch, tmp_path, dirs):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))  # HF_HUB_OFFLINE=1
    for metric in (f"pickscore:model=hf:org/not-cached,processor={dirs['v5']}",
                   f"pickscore:model={dirs['model']},processor=hf:org/not-cached",
                   "clip:model=hf:org/not-cached"):
        start = time.monotonic()
        err = one_line(capsys, images, tmp_path, metric)
        assert time.monotonic() - start < 30
        assert "'org/not-cached' is not in the local Hugging Face cache" in err, err


def test_parse_model_option_itself():
    assert parse_model_option("hf:a/b", "pickscore:model", TRANSFORMERS) == parse_model_spec("hf:a/b")
    spec = parse_model_option("hf:org/repo/sub/file.pt", "hpsv2:checkpoint", WEIGHT_FILE)
    assert (spec.family, spec.source) == ("file", "org/repo/sub/file.pt")
    with pytest.raises(ModelLoadError, match=r"^clip:model=: empty model spec"):
        parse_model_option("", "clip:model")
    with pytest.raises(ModelLoadError, match=r"^pickscore:processor=nope: .* processor= takes a hub id ORG/NAME"):
        parse_model_option("nope", "pickscore:processor", TRANSFORMERS)


def test_the_demo_keyword_wins_over_a_folder_named_demo(tmp_path, monkeypatch):
    """``clipgauge demo --out demo`` leaves a folder ``demo`` in the working folder; ``head=demo`` (a weight-file
    option) must still name the shipped demo head, not that folder."""
    from clipgauge.encoders.registry import parse_model_option

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert parse_model_option("demo", "aesthetic:head", ("file", "demo")).family == "demo"
    (tmp_path / "other").mkdir()
    with pytest.raises(Exception, match="is a folder"):
        parse_model_option("other", "aesthetic:head", ("file", "demo"))
