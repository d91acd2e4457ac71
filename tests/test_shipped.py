"""The shipped gato-tiny (checkpoints/gato-tiny): complete and small, consistent with its report,
works out of the box (play, caption, vqa, chat), and its report's returns reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gato.envs.scores import VERSION, load_scores
from gato.training.checkpoint import weights_sha256
from gato.training.loading import load_model, load_tokenizer

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "gato-tiny"
RESULTS = SHIPPED / "report" / "results.json"


def test_shipped_checkpoint_is_complete_small_and_matches_its_report():
    size = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file())
    assert size <= 50e6
    model, meta = load_model(SHIPPED)
    assert meta["model"]["name"] in ("gato-tiny", "gato-tiny-deep")  # 4 layers, or grown to 6
    assert model.num_params() > 3e6
    assert load_tokenizer(SHIPPED).sha256 == meta["tokenizer"]["sha256"]
    results = json.loads(RESULTS.read_text())
    assert results["step"] == meta["step"] and results["scores_file"]["version"] == VERSION
    # the quality issue's suite, measured as the paper does: >= 30 tasks in 7 domains, 50 episodes each
    assert len(results["tasks"]) >= 30 and len({t["domain"] for t in results["tasks"].values()}) == 7
    assert results["episodes"] == 50 and all(t["episodes"] == 50 for t in results["tasks"].values())
    assert results["weights_sha256"] == weights_sha256(SHIPPED)
    ref = load_scores()
    for name, task in results["tasks"].items():  # normalised with the reference scores that ship
        assert task["expert"] == ref[name]["expert"]["mean"] and task["random"] == ref[name]["random"]["mean"]
    assert (SHIPPED / "report" / "figure5.png").exists()
    assert (SHIPPED / "README.md").exists() and (SHIPPED / "prompts").is_dir()  # model card, prompts


def test_shipped_checkpoint_plays_captions_answers_and_chats(tmp_path):
    from gato.commands.evaluate import play
    from gato.commands.generate import caption, chat, vqa
    from gato.data.vl.builders import make_scene

    played = play(SHIPPED, "control/cartpole", out=tmp_path, max_frames=4)
    assert played["steps"] >= 1 and Path(played["video"]).exists()
    image, _ = make_scene(np.random.default_rng(0))
    Image.fromarray(image).save(tmp_path / "scene.png")
    captions = caption(SHIPPED, (tmp_path / "scene.png",))
    assert captions[str(tmp_path / "scene.png")].strip()
    assert vqa(SHIPPED, tmp_path / "scene.png", "how many shapes are there?").strip()
    assert chat(SHIPPED, prompt="The function").strip()


@pytest.mark.slow
def test_shipped_report_reproduces(tmp_path):
    """Re-evaluate one task as the report did, prompted by the prompts the checkpoint carries (the
    same tokens as the report's, which came from its training data): the mean return agrees
    within two standard errors (thread counts can flip near-ties)."""
    from gato.commands.evaluate import evaluate

    results = json.loads(RESULTS.read_text())
    name = "dmc/cartpole-balance"
    reported = results["tasks"][name]
    again = evaluate(SHIPPED, tasks=(name,), episodes=reported["episodes"], envs=results["envs"],
                     out=tmp_path / "eval", seed=results["seed"], videos=0, vl=False,
                     discrete_temperature=results.get("discrete_temperature"))  # None: as `temperature`
    mine = again["tasks"][name]
    assert mine["prompt_tokens"] == reported["prompt_tokens"]
    noise = 2 * max(reported["std"], 1e-6) / np.sqrt(reported["episodes"])
    assert abs(mine["mean"] - reported["mean"]) <= noise, (mine["returns"], reported["returns"])
