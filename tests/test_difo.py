"""DIFO with a tiny randomly initialised CLIP built by open_clip (no download): its losses against hand-computed
values, the prompt learner, CLIP and the classifier staying frozen, the one-line errors without the weights or
without open_clip, resume equality, the class-name files against the data lists, and the configs.

Every test that needs open_clip is skipped when it is not installed (``pip install -e .`` without the extra)."""

import gzip
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sfda.config import config_from_dict, load_config
from sfda.datatypes import Batch, Inference, StepInfo
from sfda.engine.runner import run_dir, run_stage
from sfda.errors import CheckpointError, ConfigError
from sfda.methods._clip import OPENAI_URLS, PromptLearner, encode_prompts, load_clip, read_class_names
from sfda.methods.difo import iic_loss, mixed_targets
from sfda.models.network import build_model
from sfda.paths import CONFIGS_DIR, LISTS_DIR, PROJECT_ROOT
from sfda.registry import METHODS

pytestmark = pytest.mark.usefixtures("one_thread")
needs_clip = pytest.mark.skipif(importlib.util.find_spec("open_clip") is None, reason="open_clip not installed")
TINY = {"method.clip_arch": "tiny", "method.clip_pretrained": False}


# -- losses by hand ---------------------------------------------------------------------------------------------
def test_iic_of_matching_one_hot_predictions_is_minus_log_k():
    eye = torch.eye(2)
    assert math.isclose(iic_loss(eye, eye).item(), -math.log(2), rel_tol=1e-6)
    assert math.isclose(iic_loss(eye, eye.flip(0)).item(), -math.log(2), rel_tol=1e-6)  # a permutation: same MI
    assert abs(iic_loss(eye, torch.full((2, 2), 0.5)).item()) < 1e-6  # independent: MI 0


def test_iic_against_a_hand_computed_joint():
    p = torch.tensor([[0.8, 0.2], [0.3, 0.7]])
    q = torch.tensor([[0.6, 0.4], [0.1, 0.9]])
    # sum_b p_b q_b^T = [[.48+.03, .32+.27], [.12+.07, .08+.63]] = [[.51, .59], [.19, .71]]; symmetrised, / 2
    j = [[0.51 / 2, (0.59 + 0.19) / 4], [(0.59 + 0.19) / 4, 0.71 / 2]]
    marg = [j[0][0] + j[0][1], j[1][0] + j[1][1]]
    expected = -sum(
        j[a][b] * (math.log(j[a][b]) - math.log(marg[a]) - math.log(marg[b])) for a in (0, 1) for b in (0, 1)
    )
    assert math.isclose(iic_loss(p, q).item(), expected, rel_tol=1e-5)


def test_mixed_target_and_mce_on_raw_logits():
    gamma = torch.tensor([0.1, 0.3])
    t = mixed_targets(torch.tensor([0, 2]), torch.tensor([1, 2]), gamma, 3)
    assert torch.allclose(t, torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.0, 1.0]]))  # agreeing labels: one-hot
    z = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 3.0]])
    assert torch.allclose(-(t * z).sum(1), torch.tensor([-(0.2 - 0.9), -3.0]))


# -- the tiny CLIP ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip():
    pytest.importorskip("open_clip")
    torch.manual_seed(0)
    return load_clip("tiny", pretrained=False)


@needs_clip
def test_initial_prompts_are_the_hand_written_prompts(tiny_clip):
    import open_clip

    names = ["alarm clock", "bike"]
    tokens = open_clip.tokenize([f"a photo of a {n}." for n in names], tiny_clip.context_length)
    learner = PromptLearner(tiny_clip, tokens, 4)
    assert learner.ctx.shape == (4, 32)
    with torch.no_grad():
        ours = encode_prompts(tiny_clip, learner(), tokens)
        theirs = tiny_clip.encode_text(tokens, normalize=True)
    assert torch.allclose(ours, theirs, atol=1e-5)


@pytest.fixture(scope="module")
def names_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("names") / "names.txt"
    f.write_text("top_left\ntop right\nbottom left\nbottom_right\n")
    return str(f)


def _config(root, out, tiny_config, names_file, source_dir=None, **extra):
    keys = {"name": "tiny/difo", "method.name": "difo", "method.class_names": names_file, "optim.epochs": 2, **TINY}
    if source_dir is not None:
        keys["source.checkpoint"] = str(source_dir)
    return config_from_dict(tiny_config(root, out, **{**keys, **extra}))


def _method(cfg):
    model = build_model(cfg)
    method = METHODS.get("difo")(model, 4, dict(cfg.method), cfg)
    from sfda.data.formats import build_format

    train_set = build_format(cfg).domain("target", train=True)
    method.setup(train_set, "cpu")
    return model, method, train_set


def _inference(model, method):
    images = torch.stack([method.clip_set[i][0] for i in range(len(method.clip_set))])
    model.eval()
    with torch.no_grad():
        features, logits = model(images, return_features=True)
    return images, Inference(features, logits, method.clip_set.labels)


@needs_clip
def test_training_step_terms_against_hand_computed_values(two_domains, tiny_config, names_file, tmp_path):
    cfg = _config(two_domains, tmp_path, tiny_config, names_file)
    model, method, _ = _method(cfg)
    images, inference = _inference(model, method)
    stats = method.on_epoch_start(0, inference)
    assert 0 <= stats["clip_accuracy"] <= 100 and "prompt_loss" in stats
    assert torch.allclose(method.memory, inference.probs)  # S from the first eval pass
    assert set(method.state_dict()) == {"memory", "text_features"}  # CLIP and its caches are rebuilt by setup
    saved = set(method.state_dict())
    assert set(vars(method)) - saved - set(method.NOT_STATE) == set()
    method.memory[:4] = torch.eye(4)[[3, 2, 1, 0]]  # a memory argmax that disagrees with CLIP somewhere
    idx = torch.arange(4)
    model.train()
    torch.manual_seed(5)
    out = method.training_step(Batch(images[idx], inference.labels[idx], idx), StepInfo(0, 2, 0, 10))
    torch.manual_seed(5)
    with torch.no_grad():
        logits = model(images[idx])
    gamma = torch.empty(4).exponential_(10.0)  # mean 0.1, drawn as the step draws it
    clip_label = method.clip_probs[idx].argmax(1)
    t = torch.stack([gamma[i] * torch.eye(4)[3 - i] + (1 - gamma[i]) * torch.eye(4)[clip_label[i]] for i in range(4)])
    assert torch.allclose(out.per_sample, 0.4 * -(t * logits).sum(1), atol=1e-5)
    assert torch.equal(out.targets, t.argmax(1))
    p = torch.softmax(logits, 1)
    pbar = p.mean(0)
    expected = iic_loss(p, method.clip_probs[idx]) + (pbar * torch.log(pbar + 1e-5)).sum()
    assert torch.allclose(out.reduced_loss, expected, atol=1e-5)
    assert torch.allclose(method.memory[idx], p, atol=1e-6)  # S_i <- p_i


@needs_clip
def test_clip_never_changes_and_the_classifier_stays_frozen(two_domains, tiny_config, names_file, tmp_path):
    cfg = _config(two_domains, tmp_path, tiny_config, names_file, **{"optim.epochs": 3})  # epoch 2 skips tuning
    model, method, _ = _method(cfg)
    clip = method.teacher.clip
    handwritten = method.teacher.text_features(method.teacher.new_prompts())
    before = {k: v.clone() for k, v in clip.state_dict().items()}
    classifier = {k: v.clone() for k, v in model.netC.state_dict().items()}
    assert not any(p.requires_grad for p in clip.parameters()) and not any(
        p.requires_grad for p in model.netC.parameters()
    )
    groups = method.param_groups()
    assert [g["name"] for g in groups] == ["netF", "netB"]
    optimizer = torch.optim.SGD([p for g in groups for p in g["params"]], lr=0.1)
    images, inference = _inference(model, method)
    for epoch in range(2):
        text_before = handwritten if method.text_features is None else method.text_features
        method.on_epoch_start(epoch, inference)
        assert not torch.equal(text_before, method.text_features)  # fresh prompts, tuned
        method.train_mode()
        assert not model.netC.training
        out = method.training_step(
            Batch(images[:8], inference.labels[:8], torch.arange(8)), StepInfo(epoch, 2, epoch, 2)
        )
        optimizer.zero_grad()
        (out.reduced_loss + out.per_sample.mean()).backward()
        assert all(p.grad is None for p in clip.parameters())
        optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in clip.state_dict().items())
    assert all(torch.equal(classifier[k], v) for k, v in model.netC.state_dict().items())


@needs_clip
@pytest.mark.parametrize("ns", [False, True])
def test_adaptation_resumes_exactly(two_domains, tiny_source_dir, tiny_config, names_file, tmp_path, ns, same_run):
    extra = {"weighting.name": "ns", "weighting.m": 4, "weighting.sigma": 0.6} if ns else {}
    full_cfg = _config(two_domains, tmp_path / "full", tiny_config, names_file, tiny_source_dir, **extra)
    full = run_stage(full_cfg)
    assert [h["epoch"] for h in full["history"]] == [0, 1, 2]
    cfg = _config(two_domains, tmp_path / "resumed", tiny_config, names_file, tiny_source_dir, **extra)
    assert run_stage(cfg, stop_after_epoch=1) is None
    state = torch.load(run_dir(cfg) / "state.pt", weights_only=False)["method"]
    assert set(state) == {"memory", "text_features"} and state["memory"].shape == (160, 4)
    resumed = run_stage(cfg)

    same_run(full_cfg, cfg, full, resumed)


# -- errors -----------------------------------------------------------------------------------------------------
@needs_clip
def test_missing_weight_file_is_one_line_naming_the_file_and_where_it_goes(tmp_path):
    path = tmp_path / "ViT-B-32.pt"
    with pytest.raises(CheckpointError) as e:
        load_clip("ViT-B-32", str(path))
    assert str(e.value) == (
        f"method.clip_weights '{path}' not found; on a machine with internet download {OPENAI_URLS['ViT-B-32']} "
        "(OpenAI's CLIP ViT-B-32 weights), put it at ~/.cache/clip/ViT-B-32.pt or set "
        "method.clip_weights=/path/to/ViT-B-32.pt"
    )


@needs_clip
def test_offline_download_failure_is_one_line(tmp_path, monkeypatch):
    import open_clip

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nsecond line")

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.cache/clip/ViT-B-32.pt
    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.raises(CheckpointError) as e:
        load_clip("ViT-B-32")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("could not get the CLIP ViT-B-32 weights (OSError: We couldn't connect")
    assert msg.endswith("put it at ~/.cache/clip/ViT-B-32.pt or set method.clip_weights=/path/to/ViT-B-32.pt")


def test_without_open_clip_the_error_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(ConfigError) as e:
        load_clip("ViT-B-32")
    assert str(e.value) == (
        "method 'difo' needs CLIP through the open_clip package: pip install open_clip_torch, "
        'or pip install -e ".[clip]"'
    )


def test_nothing_imports_open_clip_until_a_difo_run_is_set_up():
    code = (
        "import sys; sys.modules['open_clip'] = None\n"
        "import sfda.cli, sfda.methods.difo, sfda.results.table\n"
        "from sfda.config import load_config\n"
        "cfg = load_config('office-home/difo_ns/Ar_Cl.yaml')\n"
        "assert cfg.method.name == 'difo' and cfg.weighting.name == 'ns'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)


# -- class names and configs ----------------------------------------------------------------------------------
def _list_labels(path: Path):
    if not path.exists():
        path = path.with_name(path.name + ".gz")
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode()
    for line in text.splitlines():
        if line.strip():
            rel, label = line.rsplit(" ", 1)
            yield rel.split("/")[-2], int(label)


@pytest.mark.parametrize(
    "bench, num_classes",
    [("office-home", 65), ("office31", 31), ("visda-c", 12), ("domainnet-126", 126), ("digits-offline", 10)],
)
def test_class_name_files_follow_the_data_lists_label_order(bench, num_classes):
    names = read_class_names("", bench, num_classes)
    digits = "zero one two three four five six seven eight nine".split()
    for list_file in sorted((LISTS_DIR / bench).glob("*.txt*")):
        for folder, label in _list_labels(list_file.with_name(list_file.name.removesuffix(".gz"))):
            expected = digits[int(folder)] if bench == "digits-offline" else folder.replace("_", " ")
            assert names[label] == expected, (list_file, folder, label)
    if bench == "office-home":  # sfda's order (case-insensitive sort), not the reference toolbox's
        assert names[0] == "Alarm Clock" and names[63] == "TV"


def test_every_difo_config_loads_without_clip():
    names = sorted(p for p in CONFIGS_DIR.glob("*/difo*/*.yaml") if not p.name.startswith("_"))
    assert len(names) == 2 * (12 + 6 + 1 + 7)
    for p in names:
        cfg = load_config(str(p.relative_to(CONFIGS_DIR)))
        assert cfg.method.name == "difo" and cfg.optim.epochs == 15 and cfg.method.freeze_classifier
        assert (cfg.weighting.name == "ns") == (p.parent.name == "difo_ns")
        assert (
            len(read_class_names(cfg.method.class_names, cfg.benchmark, cfg.data.num_classes)) == cfg.data.num_classes
        )
        assert cfg.method.cls_par == (0.2 if cfg.benchmark == "office31" else 0.4)
        assert cfg.method.prompt_lr == cfg.optim.lr


# -- sfda table -------------------------------------------------------------------------------------------------
def _run(method, label, task, score, seed=2020):
    return {
        "benchmark": "office-home",
        "stage": "adapt",
        "method": method,
        "label": label,
        "task": task,
        "seed": seed,
        "accuracy": score,
        "metric": "accuracy",
        "source_only_accuracy": 40.0,
    }


def test_table_shows_difo_published_numbers_in_a_separate_foundation_model_group():
    from sfda.results.paper import DIFO_PAPER, FOUNDATION_GROUP
    from sfda.results.table import render

    runs = [
        _run("shot", "SHOT", "Ar_Cl", 57.0),
        _run("difo", "DIFO", "Ar_Cl", 70.0),
        _run("difo", "DIFO+NS-WS", "Ar_Cl", 71.0),
    ]
    lines = render(runs, "office-home").splitlines()
    marker = next(i for i, ln in enumerate(lines) if FOUNDATION_GROUP in ln)
    row = {ln.split("|")[1].strip(): i for i, ln in enumerate(lines) if ln.startswith("| ")}
    assert row["**SHOT** (ours)"] < row["SHOT (SHOT results.md)"] < marker
    assert marker < row["**DIFO** (ours)"] < row[f"DIFO ({DIFO_PAPER})"] < row["**DIFO+NS-WS** (ours)"]
    assert lines[row[f"DIFO ({DIFO_PAPER})"]].split("|")[2:4] == [" 70.6 ", " 83.1 "]  # Ar→Cl, then the average
    assert lines[marker].count("|") == lines[row["**SHOT** (ours)"]].count("|")
    assert any(ln.startswith(f"Note ({DIFO_PAPER})") for ln in lines)
    without = render([_run("shot", "SHOT", "Ar_Cl", 57.0)], "office-home").splitlines()  # published DIFO: still apart
    marker = next(i for i, ln in enumerate(without) if FOUNDATION_GROUP in ln)
    names_above = [ln.split("|")[1].strip().strip("*") for ln in without[:marker] if ln.startswith("| ")]
    assert "DIFO" in without[marker + 1] and not any(n.startswith("DIFO") for n in names_above)  # no DIFO row above
