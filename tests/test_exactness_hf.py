"""clipgauge's cosines equal transformers' own CLIP features on CLIPProcessor (PIL) output, to 1e-4."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PROMPTS, jpeg_files, random_rgb
from PIL import Image
from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

from clipgauge import Scorer

TOL = 1e-4


@pytest.fixture(scope="module")
def reference(hf_model_dir):
    model = CLIPModel.from_pretrained(hf_model_dir).eval()
    tok = CLIPTokenizer.from_pretrained(hf_model_dir)
    proc = CLIPImageProcessorPil.from_pretrained(hf_model_dir)

    def ref_image(img: Image.Image) -> torch.Tensor:
        with torch.no_grad():
            px = proc(images=img, return_tensors="pt")["pixel_values"]
            f = model.get_image_features(pixel_values=px).pooler_output
        return torch.nn.functional.normalize(f, dim=-1)[0]

    def ref_text(text: str, **kw) -> torch.Tensor:
        enc = tok([text], padding="max_length", truncation=True, max_length=77, return_tensors="pt", **kw)
        with torch.no_grad():
            f = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output
        return torch.nn.functional.normalize(f, dim=-1)[0]

    return model, tok, ref_image, ref_text


def reference_cosines(reference, images, prompts):
    _, _, ref_image, ref_text = reference
    return np.array([float(ref_image(im) @ ref_text(p)) for im, p in zip(images, prompts)])


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_cosines_match_transformers(hf_model_dir, reference, batch_size):
    images = [random_rgb(i, size=(80 + 20 * i, 240 - 15 * i)) for i in range(9)]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(9)]
    expected = reference_cosines(reference, images, prompts)
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=batch_size)
    got = scorer.score(images, prompts)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    # the scores actually vary, so agreement is not an accident of a constant model
    assert np.ptp(expected) > 1e-3


def test_row_order_does_not_change_scores(hf_scorer):
    images = [random_rgb(i) for i in range(7)]
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(7)]
    forward = hf_scorer.score(images, prompts)
    perm = np.random.default_rng(1).permutation(7)
    shuffled = hf_scorer.score([images[i] for i in perm], [prompts[i] for i in perm])
    np.testing.assert_allclose(shuffled, forward[perm], atol=1e-6)


def test_embeddings_are_normalised_and_match_reference(hf_scorer, reference):
    _, _, ref_image, ref_text = reference
    img = random_rgb(3)
    e_img = hf_scorer.embed_images([img])
    e_txt = hf_scorer.embed_texts(["a photo of a cat", "a dog"])
    assert e_img.shape == (1, 16) and e_txt.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(e_img, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e_img[0], ref_image(img).numpy(), atol=TOL)
    np.testing.assert_allclose(e_txt[1], ref_text("a dog").numpy(), atol=TOL)


def test_image_kinds_match_reference_decoding(hf_scorer, reference, tmp_path):
    """Files of several kinds score like the reference fed the picture a person sees."""
    base = random_rgb(5, size=(120, 90))
    rgba = base.convert("RGBA")
    alpha = np.full((90, 120), 255, np.uint8)
    alpha[:, :60] = 0  # left half fully transparent → white
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "alpha.png")
    seen_alpha = np.asarray(base).copy()
    seen_alpha[:, :60] = 255

    base.convert("L").save(tmp_path / "gray.png")
    seen_gray = base.convert("L").convert("RGB")

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    base.save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    seen_rot = Image.open(tmp_path / "rotated.jpg").convert("RGB").transpose(Image.Transpose.ROTATE_270)

    base.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    seen_cmyk = Image.open(tmp_path / "cmyk.jpg").convert("RGB")

    paths = [tmp_path / n for n in ("alpha.png", "gray.png", "rotated.jpg", "cmyk.jpg")]
    seen = [Image.fromarray(seen_alpha), seen_gray, seen_rot, seen_cmyk]
    assert seen_rot.size == (90, 120)
    prompts = ["a photo of a cat"] * 4
    np.testing.assert_allclose(
        hf_scorer.score(paths, prompts), reference_cosines(reference, seen, prompts), atol=TOL
    )


def test_long_prompt_keeps_end_of_text_and_is_flagged(hf_scorer, reference):
    model, tok, ref_image, ref_text = reference
    long_prompt = PROMPTS[3]
    assert len(tok(long_prompt)["input_ids"]) > 77
    img = random_rgb(0)
    result = hf_scorer.score_pairs([img, img], [long_prompt, "a photo of a cat"])
    assert result.truncated.tolist() == [True, False]
    expected = float(ref_image(img) @ ref_text(long_prompt))
    assert abs(result.cosine[0] - expected) < TOL
    # torchmetrics' cut, input_ids[:, :77], drops the end-of-text token and gives a different score
    ids = tok([long_prompt], return_tensors="pt")["input_ids"][:, :77]
    assert ids[0, -1].item() != tok.eos_token_id
    with torch.no_grad():
        cut = torch.nn.functional.normalize(model.get_text_features(input_ids=ids).pooler_output, dim=-1)[0]
    assert abs(float(ref_image(img) @ cut) - expected) > 1e-3


def test_prompt_prefix_is_applied(hf_model_dir, reference):
    _, _, ref_image, ref_text = reference
    scorer = Scorer(f"hf:{hf_model_dir}", device="cpu", prompt_prefix="a photo of ")
    img = random_rgb(2)
    got = scorer.score([img], ["a cat"])[0]
    assert abs(got - float(ref_image(img) @ ref_text("a photo of a cat"))) < TOL


def test_tensor_and_array_inputs(hf_scorer, reference):
    _, _, ref_image, ref_text = reference
    img = random_rgb(4)
    arr = np.array(img)
    as_float = torch.from_numpy(arr).permute(2, 0, 1).float() / 255.0
    as_uint8 = torch.from_numpy(arr).permute(2, 0, 1)
    got = hf_scorer.score([arr, as_float, as_uint8, img], "a photo of a cat")
    expected = float(ref_image(img) @ ref_text("a photo of a cat"))
    np.testing.assert_allclose(got, expected, atol=TOL)


def test_bf16_close_to_fp32(hf_model_dir):
    images = [random_rgb(i) for i in range(4)]
    fp32 = Scorer(f"hf:{hf_model_dir}", device="cpu").score(images, "a photo of a cat")
    bf16 = Scorer(f"hf:{hf_model_dir}", device="cpu", precision="bf16").score(images, "a photo of a cat")
    assert np.max(np.abs(fp32 - bf16)) < 2e-2


@pytest.mark.parametrize("size", [(224, 224), (225, 224), (300, 200), (200, 300), (1000, 999), (97, 1003), (231, 227)])
def test_direct_preprocessing_equals_clip_image_processor_pil(hf_scorer, size):
    """The direct re-implementation gives bit-identical pixels to CLIPImageProcessorPil."""
    enc = hf_scorer.encoder
    assert enc.crop_plan is not None
    img = random_rgb(sum(size), size=size)
    expected = enc.processor(images=img, return_tensors="pt")["pixel_values"][0]
    assert torch.equal(enc.preprocess(img), expected)


def test_fast_decode_is_opt_in_close_and_recorded(tmp_path, hf_model_dir):
    paths = jpeg_files(tmp_path, 3, size=(512, 512))
    exact = Scorer(f"hf:{hf_model_dir}", device="cpu")
    fast = Scorer(f"hf:{hf_model_dir}", device="cpu", fast_decode=True)
    assert exact.provenance()["preprocessing"]["fast_decode"] is False
    assert fast.provenance()["preprocessing"]["fast_decode"] is True
    a, b = exact.score(paths, "a cat"), fast.score(paths, "a cat")
    assert np.max(np.abs(a - b)) < 0.05  # close, but not the exact path
    assert np.max(np.abs(a - b)) > 0


def test_preprocessing_is_the_pil_one_not_torchvision(hf_scorer, hf_model_dir):
    """transformers 5 defaults to a torchvision backend; clipgauge must use the original PIL preprocessing."""
    from transformers import CLIPImageProcessor

    img = random_rgb(11, size=(333, 517))
    ours = hf_scorer.encoder.preprocess(img)
    pil = CLIPImageProcessorPil.from_pretrained(hf_model_dir)(images=img, return_tensors="pt")["pixel_values"][0]
    tv = CLIPImageProcessor.from_pretrained(hf_model_dir)(images=img, return_tensors="pt")["pixel_values"][0]
    assert torch.equal(ours, pil)
    assert (ours - tv).abs().max() > 1e-3  # the two backends really differ, so the check above means something


def test_worker_count_and_batch_size_never_change_results(hf_model_dir, tmp_path):
    paths = jpeg_files(tmp_path, 7, size=(300, 200))
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(7)]
    results = [Scorer(f"hf:{hf_model_dir}", device="cpu", batch_size=b, num_workers=w).score(paths, prompts)
               for b, w in [(1, 1), (7, 1), (2, 4), (3, 8)]]
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6, rtol=0)
