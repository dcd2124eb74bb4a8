"""The procedural scene renderer behind the demo model and ``clipgauge demo`` (random captions for training:
``tools/demo_sampling.py``)."""

from __future__ import annotations

import demo_sampling
import numpy as np
import pytest

from clipgauge.demo import scenes
from clipgauge.demo.scenes import PlacedShape, PromptSpec, Scene, Thing


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda name: float(np.linalg.norm(rgb - np.asarray(palette[name]))))


def _pixel(image, x: float, y: float) -> np.ndarray:
    """Mean colour of the 3×3 pixels around the fractional position (x, y)."""
    a = np.asarray(image, dtype=float)
    side = a.shape[0]
    i, j = int(y * side), int(x * side)
    return a[max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].reshape(-1, 3).mean(0)


def test_sampling_and_rendering_are_deterministic() -> None:
    first = [demo_sampling.sample_example(7) for _ in range(3)]
    again = [demo_sampling.sample_example(7) for _ in range(3)]
    for (img_a, spec_a), (img_b, spec_b) in zip(first, again):
        assert spec_a == spec_b
        assert img_a.tobytes() == img_b.tobytes()
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    seq_a = [demo_sampling.sample_example(rng_a)[0].tobytes() for _ in range(5)]
    seq_b = [demo_sampling.sample_example(rng_b)[0].tobytes() for _ in range(5)]
    assert seq_a == seq_b
    assert len(set(seq_a)) == 5
    assert demo_sampling.sample_example(8)[0].tobytes() != first[0][0].tobytes()
    a = scenes.render_examples(["a red circle", "two blue stars"], per_prompt=2, seed=1, size=32)
    b = scenes.render_examples(["a red circle", "two blue stars"], per_prompt=2, seed=1, size=32)
    assert [x.image.tobytes() for x in a] == [x.image.tobytes() for x in b]


def test_image_size_and_mode() -> None:
    spec = scenes.parse_caption("a green triangle")
    for size in (64, 100, 256):
        image, _ = scenes.render_prompt(spec, rng=0, size=size)
        assert image.size == (size, size) and image.mode == "RGB"


@pytest.mark.parametrize("seed", range(4))
def test_object_and_background_colours_match_the_caption(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for spec in demo_sampling.single_object_specs():
        scene = scenes.sample_scene(spec, rng)
        image = scenes.render(scene, 64)
        (shape,) = scene.shapes
        assert _nearest(_pixel(image, shape.cx, shape.cy), scenes.COLOURS) == spec.things[0].colour
        # the corner farthest from the object shows the background
        corners = ((0.03, 0.03), (0.97, 0.03), (0.03, 0.97), (0.97, 0.97))
        corner = max(corners, key=lambda c: np.hypot(c[0] - shape.cx, c[1] - shape.cy))
        assert _nearest(_pixel(image, *corner), scenes.BACKGROUND_COLOURS) == scene.background
        assert scene.background != spec.things[0].colour


def test_two_object_captions_match_the_picture() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        spec = demo_sampling.sample_spec(rng, kind_weights={"rel": 1, "and": 1, "two": 1}, background_prob=0.5)
        scene = scenes.sample_scene(spec, rng)
        image = scenes.render(scene, 64)
        assert len(scene.shapes) == 2
        for shape in scene.shapes:
            assert _nearest(_pixel(image, shape.cx, shape.cy), scenes.COLOURS) == shape.colour
        assert sorted(s.thing for s in scene.shapes) == sorted(spec.things * (2 if spec.kind == "two" else 1))
        if spec.background is not None:
            assert scene.background == spec.background
        if spec.kind == "rel":
            a, b = scene.shapes
            dx, dy = b.cx - a.cx, b.cy - a.cy
            expected = {"left of": dx > 0, "right of": dx < 0, "above": dy > 0, "below": dy < 0}[spec.relation]
            assert expected and max(abs(dx), abs(dy)) >= 0.15


@pytest.mark.parametrize(("shape", "fill"), [("circle", 0.785), ("square", 1.0), ("triangle", 0.5), ("star", 0.427)])
def test_shapes_have_their_geometry(shape: str, fill: float) -> None:
    """Filled fraction of the object's bounding box identifies the shape (no tilt, no noise)."""
    white, black = (255, 255, 255), (0, 0, 0)
    scene = Scene((PlacedShape(shape, "black", black, 0.5, 0.5, 0.3, 0.0),), "white", (white, white))
    mask = np.asarray(scenes.render(scene, 256), dtype=float).mean(-1) < 128
    rows, cols = np.nonzero(mask)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert mask.sum() / box == pytest.approx(fill, abs=0.03)


def test_captions_round_trip_through_the_parser() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        spec = demo_sampling.sample_spec(rng)
        assert scenes.parse_caption(spec.caption) == spec
        assert scenes.parse_caption(spec.caption.upper() + ".") == spec
    assert scenes.parse_caption("a red circle to the left of a blue star").relation == "left of"
    assert scenes.parse_caption("an orange star on a grey background").background == "gray"
    assert scenes.parse_caption("two yellow stars").kind == "two"
    for bad in ("a cat", "a red circle and a red circle", "a red circle on a red background", "two red circle", ""):
        assert scenes.parse_caption(bad) is None
    assert PromptSpec("one", (Thing("orange", "star"),), prefix=3).caption == "an image of an orange star"


def test_followed_and_mismatched_renders() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        spec = demo_sampling.sample_spec(rng)
        _, scene = scenes.render_prompt(spec, follow=True, rng=rng, size=32)
        assert scenes.satisfies(scene, spec)
        assert scenes.parse_caption(scenes.describe(scene)).key in scenes.scene_keys(scene)
        _, wrong = scenes.render_prompt(spec, follow=False, rng=rng, size=32)
        assert not scenes.satisfies(wrong, spec)


@pytest.mark.parametrize("change", ["colour", "shape", "relation", "swap"])
def test_mismatch_changes_one_attribute(change: str) -> None:
    spec = scenes.parse_caption("a red circle to the left of a blue star")
    wrong = scenes.mismatch_spec(spec, 0, change=change)
    assert wrong.key != spec.key
    if change == "relation":
        assert wrong.caption == "a red circle to the right of a blue star"
    if change == "swap":
        assert wrong.caption == "a blue circle to the left of a red star"
    with pytest.raises(ValueError):
        scenes.mismatch_spec(spec, 0, change="count")


def test_mismatch_can_be_restricted_to_some_edits() -> None:
    spec = scenes.parse_caption("a red circle to the left of a blue star")
    rng = np.random.default_rng(0)
    wrong = [scenes.mismatch_spec(spec, rng, change=scenes.DEMO_MODEL_CHANGES) for _ in range(200)]
    assert all(w.relation == "left of" for w in wrong)  # never the relation edit
    assert {w.key for w in wrong} > {scenes.mismatch_spec(spec, 0, change="swap").key}
    # no listed edit applies to a single object: falls back to colour / shape
    one = scenes.parse_caption("a red circle")
    for w in (scenes.mismatch_spec(one, rng, change=["relation"]) for _ in range(50)):
        assert w.kind == "one" and w.key != one.key
    examples = scenes.render_examples([spec], per_prompt=6, seed=0, size=32, change=scenes.DEMO_MODEL_CHANGES)
    assert [e.follows for e in examples] == [True] * 3 + [False] * 3


def test_render_examples_mixes_followed_and_mismatched_images() -> None:
    prompts = ["a red circle", "two yellow stars", "a green triangle on a white background"]
    examples = scenes.render_examples(prompts, per_prompt=4, follow_fraction=0.5, seed=0, size=64)
    assert [e.prompt for e in examples] == [p for p in prompts for _ in range(4)]
    assert [e.follows for e in examples] == [True, True, False, False] * 3
    for e in examples:
        assert scenes.satisfies(e.scene, scenes.parse_caption(e.prompt)) == e.follows
        assert e.image.size == (64, 64)
        assert scenes.parse_caption(e.shown).key in scenes.scene_keys(e.scene)
    with pytest.raises(ValueError, match="not a demo caption"):
        scenes.render_prompt("a photo of a cat")
    with pytest.raises(ValueError):
        scenes.render_prompt("a red circle on a red background")


def test_out_of_distribution_scenes_leave_the_training_ranges() -> None:
    rng = np.random.default_rng(2)
    spec = scenes.parse_caption("a purple square")
    for _ in range(100):
        (s,) = scenes.sample_scene(spec, rng, ood=["size"]).shapes
        assert not 0.13 <= s.radius <= 0.28
        (s,) = scenes.sample_scene(spec, rng, ood=["position"]).shapes
        assert min(s.cx, s.cy, 1 - s.cx, 1 - s.cy) < s.extent  # crosses the border
        scene = scenes.sample_scene(spec, rng, ood=["background"])
        assert scene.background is None and scenes.satisfies(scene, spec)
    with pytest.raises(ValueError):
        scenes.sample_scene(spec, rng, ood=["lighting"])
