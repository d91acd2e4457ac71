"""A model card (README.md with Hugging Face metadata) for an exported checkpoint, so the folder
can be uploaded as a model repository unchanged. It says what the weights were trained on, how
to load and run them, and (given a results.json) what they score, against which references."""

from __future__ import annotations


def model_card(meta: dict, prompted: list[str], results: dict | None = None, licence: str = "apache-2.0") -> str:
    train, model = meta.get("train", {}), meta.get("model", {})
    tasks = list(train.get("tasks") or prompted)
    lines = ["---", "library_name: gato", f"license: {licence}", "tags:", "- gato", "- generalist-agent",
             "- reinforcement-learning", "- behaviour-cloning", "pipeline_tag: reinforcement-learning", "---", "",
             f"# {model.get('name', 'gato')} (step {meta.get('step')})", "",
             "One decoder-only transformer trained on one token stream of text, images and the observations "
             "and actions of many control tasks, as in DeepMind's Gato (arXiv 2205.06175), with the open "
             "implementation `gato`.", "",
             "## Model", "",
             f"{model.get('num_layers')} layers, width {model.get('width')}, {model.get('num_heads')} heads, "
             f"context {train.get('context') or model.get('context')} tokens, text vocabulary "
             f"{model.get('text_vocab')} (its SentencePiece model is `tokenizer.model`). "
             + ("Observations are read in the paper's order: text, image patches, then tensors."
                if model.get("observation_order", "key") == "modality" else
                "Dict observations are read by key alone (trained before the paper's text-first order; "
                "BabyAI's grid comes before its mission)."), "",
             "## Training", "",
             f"Recipe fields (config.json holds them all): {train.get('steps')} steps of {train.get('batch_size')} "
             f"sequences, peak learning rate {train.get('lr')}, data `{train.get('data')}`, target sigma "
             f"{train.get('target_sigma', 0.0)}, start probability {train.get('start_prob', 0.0)}"
             + (f", more rows for {', '.join(f'`{w}`' for w in weights)} (task weights)."
                if (weights := train.get("task_weights")) else ".")
             + (" Every row weighed the same in the loss (`--loss-weighting row`), not every target token."
                if train.get("loss_weighting") == "row" else "")
             + (f" These steps continued the weights of `{train['init']}` (fine-tuning, a DAgger round or a "
                "consolidation): the step count is this last run's, not the model's whole training."
                if train.get("init") else "")
             + (f" The weights are then {1 - merged['weight']:g} x `{merged['parents'][0]['path']}` + "
                f"{merged['weight']:g} x `{merged['parents'][1]['path']}` (`gato merge`: the run's start and its "
                "result averaged, WiSE-FT)." if (merged := meta.get("merged")) else ""), "",
             f"Tasks ({len(tasks)}): " + (", ".join(f"`{t}`" for t in tasks) or "see config.json") + ".", "",
             "Demonstration prompts for these tasks are in `prompts/` (the end of each task's best "
             "demonstration), so evaluation is prompted as in the paper.", "",
             "## Use (no network needed)", "", "```bash",
             "pip install <this project>   # provides the `gato` command",
             "gato play ./this-folder control/cartpole       # one episode as a GIF",
             "gato eval ./this-folder --suite demo --episodes 50",
             "gato chat ./this-folder --prompt \"Return the\"", "```", ""]
    if results:
        lines += ["## Results", "",
                  f"`gato eval`, {results.get('episodes')} episodes per task, expert-normalised: "
                  "(score - random) / (expert - random), with the repository's own experts and a uniformly "
                  "random policy as references (not human scores).", "",
                  "| domain | tasks | mean | tasks at or above 50% |", "|---|---|---|---|"]
        for d, s in results.get("domains", {}).items():
            lines.append(f"| {d} | {s['tasks']} | {100 * s['mean']:.1f}% | {s['above_50']} |")
        o = results.get("overall", {})
        lines += ["", f"{o.get('tasks_above_50')} of {o.get('tasks_normalized')} tasks at or above 50% of "
                      "the expert.", ""]
    lines += ["## Files", "", "`model.safetensors` (weights), `config.json` (model, training configuration, "
              "token map, tokenizer hash), `tokenizer.model`, `prompts/` (demonstration prompts). No pickles.", ""]
    return "\n".join(lines)
