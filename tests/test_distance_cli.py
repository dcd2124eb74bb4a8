"""``clipgauge distance``: every key of the JSON, stored embeddings (no image read again), reference files, the
model check and the CMMD reference preprocessing, against recipes written out here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
from conftest import random_rgb

from clipgauge.cli import main

KEYS = ("cmmd", "fd", "kid_mean", "kid_std", "vendi_generated", "vendi_reference", "n_generated", "n_reference",
        "model", "preprocessing")


def _mmd(x, y, sigma=10.0, scale=1000.0):
    """google-research cmmd/distance.py ``mmd`` in numpy (diagonal terms kept)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    gamma = 1 / (2 * sigma**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * x @ x.T + xx[:, None] + xx[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * x @ y.T + xx[:, None] + yy[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * y @ y.T + yy[:, None] + yy[None, :])))
    return scale * (k_xx + k_yy - 2 * k_xy)


def _fd(x, y):
    """clean-fid's frechet_distance of Gaussians fitted with np.cov(rowvar=False)."""
    m1, m2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean
    return float((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    for name, base in (("gen", 0), ("ref", 100)):
        (root / name).mkdir()
        for i in range(10):
            random_rgb(base + i, size=(80 + 4 * i, 64)).save(root / name / f"{i:02d}.png")
    return root


def _run(capsys, *args):
    code = main(["distance", *map(str, args), "--device", "cpu", "--json", "-"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else out)


def _embeddings(folder, model="demo"):
    from clipgauge import Scorer

    scorer = Scorer(model, device="cpu")
    return scorer.embed_images(sorted(folder.glob("*.png")))


def test_all_keys_against_written_out_recipes(sets, capsys):
    code, doc = _run(capsys, sets / "gen", sets / "ref", "--model", "demo")  # the default: every metric
    assert code == 0
    for key in KEYS:
        assert key in doc
    for key in ("cmmd_ci", "fd_ci", "kid_ci"):
        assert len(doc[key]) == 2 and doc[key][0] <= doc[key][1]
    for key in ("cmmd", "fd"):  # the resamples' upward bias (repeated rows) is corrected: the estimate is inside
        assert doc[f"{key}_ci"][0] <= doc[key] <= doc[f"{key}_ci"][1]
    x, y = _embeddings(sets / "gen"), _embeddings(sets / "ref")
    assert doc["cmmd"] == pytest.approx(_mmd(x, y), rel=1e-5)
    assert doc["fd"] == pytest.approx(_fd(x.astype(np.float64), y.astype(np.float64)), rel=1e-5)
    assert doc["n_generated"] == doc["n_reference"] == 10 and doc["model"] == "demo"
    assert any("FD is biased" in w for w in doc["warnings"])


def test_stored_embeddings_need_no_images(sets, tmp_path, capsys):
    import shutil

    gen = tmp_path / "gen"
    shutil.copytree(sets / "gen", gen)
    code = main(["score", str(gen), "--model", "demo", "--device", "cpu", "--metric", "clip_iqa",
                 "--save-embeddings", "--out", str(tmp_path / "run")])
    capsys.readouterr()
    assert code in (0, 1)
    _, fresh = _run(capsys, gen, sets / "ref", "--model", "demo", "--resamples", "0")
    assert all(k in fresh for k in ("cmmd", "fd", "kid_mean", "vendi_generated"))  # the default: every metric
    shutil.rmtree(gen)  # the stored side must not read an image again
    code, stored = _run(capsys, tmp_path / "run", sets / "ref", "--resamples", "0")
    assert code == 0 and stored["sides"]["generated"]["kind"] == "stored" and stored["model"] == "demo"
    # float16 storage: unit vectors rounded to 11 significant bits (measured on the demo model: embeddings within
    # 1.2e-4 per element, CMMD and FD within 2e-4 relative, KID 5e-4, Vendi 1e-5)
    assert stored["cmmd"] == pytest.approx(fresh["cmmd"], rel=2e-3, abs=1e-6)
    assert stored["fd"] == pytest.approx(fresh["fd"], rel=2e-3)


def test_reference_file_round_trip(sets, tmp_path, capsys):
    ref = tmp_path / "ref.npz"
    code, saved = _run(capsys, "--save-reference", ref, sets / "ref", "--model", "demo")
    assert code == 0 and saved["n"] == 10 and ref.is_file()
    _, direct = _run(capsys, sets / "gen", sets / "ref", "--model", "demo", "--metric", "cmmd,fd,vendi")
    code, via = _run(capsys, sets / "gen", ref, "--metric", "cmmd,fd,vendi")  # the model comes from the file
    assert code == 0 and via["model"] == "demo"
    for key in ("cmmd", "fd", "vendi_reference"):
        assert via[key] == pytest.approx(direct[key], rel=1e-6)


def test_another_model_is_refused_in_one_line(sets, tmp_path, capsys, hf_model_dir):
    ref = tmp_path / "ref.npz"
    assert _run(capsys, "--save-reference", ref, sets / "ref", "--model", "demo")[0] == 0
    code = main(["distance", str(sets / "gen"), str(ref), "--model", f"hf:{hf_model_dir}", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "different models" in err and len(err.splitlines()) == 1


def test_not_a_reference_file_and_wrong_arity(tmp_path, capsys):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    assert main(["distance", str(bad), str(bad)]) == 2
    assert "not a clipgauge reference-statistics file" in capsys.readouterr().err
    assert main(["distance", str(tmp_path)]) == 2
    assert "two inputs" in capsys.readouterr().err


def test_cmmd_preprocessing_is_their_recipe(sets):
    """google-research cmmd/io_util.py: centred largest square, PIL bicubic to the input size, /255, mean/std."""
    from PIL import Image

    from clipgauge import Scorer
    from clipgauge.distribution.sides import cmmd_image

    scorer = Scorer("demo", device="cpu")
    size = scorer.encoder.input_size
    img = Image.open(sorted((sets / "gen").glob("*.png"))[5]).convert("RGB")
    w, h = img.size
    s = min(w, h)
    theirs = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize(
        (size, size), resample=Image.BICUBIC)
    ours = cmmd_image(img, size)
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    pp = scorer.encoder.preprocessing()
    want = (np.asarray(theirs, np.float32) / 255.0 - np.array(pp["mean"])) / np.array(pp["std"])
    got = scorer.encoder.preprocess(ours).numpy().transpose(1, 2, 0)
    assert np.abs(got - want).max() < 1e-5  # the model's own preprocessing leaves it as it is


def test_mixed_preprocessing_is_refused(sets, tmp_path, capsys):
    ref = tmp_path / "ref.npz"
    assert _run(capsys, "--save-reference", ref, sets / "ref", "--model", "demo")[0] == 0
    code = main(["distance", str(sets / "gen"), str(ref), "--preprocess", "cmmd", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "preprocessed differently" in err and len(err.splitlines()) == 1


def _hf_image_features(model_dir, pixel_values):
    """transformers alone: CLIPModel.get_image_features, L2-normalised."""
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return torch.nn.functional.normalize(model.get_image_features(pixel_values=pixel_values).pooler_output,
                                             dim=-1).numpy()


def test_embeddings_are_the_models_own(tmp_path, hf_model_dir):
    """The embeddings `distance` uses are transformers' (CLIPImageProcessorPil + CLIPModel), not a self-comparison."""
    from conftest import jpeg_files
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    from clipgauge.distribution.run import read_side

    paths = jpeg_files(tmp_path, 5, size=(300, 200))
    side = read_side(tmp_path, model=f"hf:{hf_model_dir}", device="cpu", batch_size=2)
    proc = CLIPImageProcessorPil.from_pretrained(hf_model_dir)
    px = proc(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
    np.testing.assert_allclose(side.embeddings, _hf_image_features(hf_model_dir, px), atol=1e-5, rtol=0)
    assert side.n == 5 and side.kind == "images" and side.preprocessing.get("recipe") is None


def test_cmmd_preprocessing_embeddings_follow_their_recipe(tmp_path, hf_model_dir):
    """--preprocess cmmd end to end: google-research cmmd/io_util.py's pixels written out (centred largest square,
    PIL bicubic to the input size, /255), CLIP's mean/std, then the model: equal to `distance`'s embeddings."""
    import torch
    from conftest import jpeg_bytes, jpeg_files
    from PIL import Image
    from transformers import CLIPImageProcessorPil

    from clipgauge.distribution.run import read_side

    jpeg_files(tmp_path, 4, size=(300, 200))
    (tmp_path / "tall.jpg").write_bytes(jpeg_bytes(random_rgb(9, size=(90, 170))))  # portrait, smaller than 224
    paths = sorted(tmp_path.glob("*.jpg"))
    proc = CLIPImageProcessorPil.from_pretrained(hf_model_dir)
    size = proc.crop_size["height"]
    pixels = []
    for p in paths:
        im = Image.open(p).convert("RGB")
        w, h = im.size
        side_len = min(w, h)
        top, left = (h - side_len) // 2, (w - side_len) // 2
        im = im.crop((left, top, left + side_len, top + side_len)).resize((size, size), resample=Image.BICUBIC)
        x = np.asarray(im).astype(np.float32) / 255.0
        x = (x - np.array(proc.image_mean, np.float32)) / np.array(proc.image_std, np.float32)
        pixels.append(torch.from_numpy(x.transpose(2, 0, 1)))
    want = _hf_image_features(hf_model_dir, torch.stack(pixels))
    side = read_side(tmp_path, model=f"hf:{hf_model_dir}", device="cpu", batch_size=2, preprocess="cmmd")
    np.testing.assert_allclose(side.embeddings, want, atol=1e-5, rtol=0)
    assert "recipe" in side.preprocessing and side.preprocessing["size"] == size
    own = read_side(tmp_path, model=f"hf:{hf_model_dir}", device="cpu", batch_size=2)
    assert np.abs(own.embeddings - side.embeddings).max() > 1e-4  # the two preprocessings do differ


def test_reference_file_provenance(sets, tmp_path, capsys):
    from clipgauge.distribution.reference import load_reference

    ref = tmp_path / "ref.npz"
    assert _run(capsys, "--save-reference", ref, sets / "ref", "--model", "demo")[0] == 0
    stats = load_reference(ref)
    assert stats.n == 10 and stats.embeddings.dtype == np.float32 and stats.cov.dtype == np.float64
    assert stats.model == "demo" and len(stats.weights_sha256) == 64
    prov = stats.provenance
    assert prov["libraries"]["torch"] and "transformers" in prov["libraries"] and "open_clip_torch" in prov["libraries"]
    assert prov["input_fingerprint"]["files"] == 10 and prov["clipgauge_version"] and prov["created"]
    assert prov["embedder"]["model"]["spec"] == "demo"


def test_unreadable_images_are_counted_not_used(sets, tmp_path, capsys):
    import shutil

    gen = tmp_path / "gen"
    shutil.copytree(sets / "gen", gen)
    (gen / "99.png").write_bytes(b"not an image")
    code, doc = _run(capsys, gen, sets / "ref", "--model", "demo", "--resamples", "0")
    assert code == 0 and doc["n_generated"] == 10 and doc["n_failed_generated"] == 1
    assert doc["n_failed_reference"] == 0
