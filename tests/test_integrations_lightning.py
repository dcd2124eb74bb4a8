"""The Lightning callback in a real ``lightning.Trainer`` on CPU."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")

import lightning as L  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from clipgauge.integrations.lightning import CLIPTrackerCallback  # noqa: E402
from clipgauge.track import CLIPTracker  # noqa: E402

PROMPTS = ["a red circle", "two yellow stars"]


class TinyGenerator(L.LightningModule):
    """A 'generator' whose images are a function of its weights: sigmoid(w) broadcast to 3 x 32 x 32."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3, 1, 1))
        self.calls: list[tuple[bool, bool]] = []  # (training mode, grad enabled) during generate

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = ((self.w.mean() - x.mean()) ** 2)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def sample(self, prompts: list[str]) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        img = torch.sigmoid(self.w).expand(3, 32, 32)
        return img.unsqueeze(0).repeat(len(prompts), 1, 1, 1)


def _trainer(tmp_path, callback, max_steps: int) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=TensorBoardLogger(tmp_path, name="run"),
                     callbacks=[callback], enable_progress_bar=False, enable_checkpointing=False,
                     enable_model_summary=False, log_every_n_steps=1)


def _data() -> DataLoader:
    return DataLoader(TensorDataset(torch.linspace(1, 2, 64).reshape(64, 1)), batch_size=4)


def test_callback_in_a_real_trainer(hf_scorer, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, writers=[f"jsonl:{tmp_path / 'clip.jsonl'}"])
    callback = CLIPTrackerCallback(tracker, generate=lambda prompts, module: module.sample(prompts),
                                   every_n_steps=2, eval_at_start=True)
    model = TinyGenerator()
    trainer = _trainer(tmp_path, callback, max_steps=6)
    trainer.fit(model, _data())
    assert trainer.global_step == 6
    assert [r.step for r in callback.results] == [0, 2, 4, 6]
    assert model.calls == [(False, False)] * 4  # eval mode, no autograd while generating
    assert model.training  # and back to training afterwards
    # the images changed as the weights trained, so the scores did too
    means = [r["clip/mean"] for r in callback.results]
    assert len(set(means)) == 4
    # clip/* went to the trainer's own TensorBoard run, next to the loss
    acc = EventAccumulator(trainer.logger.log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]
    logged = {e.step: e.value for e in acc.Scalars("clip/mean")}
    assert sorted(logged) == [0, 2, 4, 6]
    for r in callback.results:
        assert logged[r.step] == pytest.approx(r["clip/mean"], abs=1e-6)
        assert acc.Scalars("clip/min")[0].value <= acc.Scalars("clip/max")[0].value
    assert len((tmp_path / "clip.jsonl").read_text().splitlines()) == 4


def test_alert_stops_the_trainer(hf_scorer, tmp_path):
    fired = []
    tracker = CLIPTracker(hf_scorer, prompts=PROMPTS, alerts=["floor:2.0@4!"], on_alert=fired.append)
    callback = CLIPTrackerCallback(tracker, generate=lambda prompts, module: module.sample(prompts), every_n_steps=2)
    trainer = _trainer(tmp_path, callback, max_steps=12)
    trainer.fit(TinyGenerator(), _data())
    assert [a.step for a in fired] == [4]
    assert trainer.global_step == 4
