import pytest
import torch

from sfda.config import config_from_dict
from sfda.errors import CheckpointError
from sfda.models.checkpoint import atomic_save, load_fbc, save_fbc
from sfda.models.heads import WeightNormLinear
from sfda.models.network import build_model


def _model(backbone="resnet18", K=65, **kw):
    cfg = config_from_dict({"data": {"num_classes": K}, "model": {"backbone": backbone, "pretrained": False, **kw}})
    return build_model(cfg)


def test_state_dict_keys_match_shot():
    m = _model()
    f, b, c = (set(getattr(m, n).state_dict()) for n in ("netF", "netB", "netC"))
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer4.1.bn2.bias"} <= f
    assert not any(k.startswith("fc.") for k in f)
    assert b == {
        "bottleneck.weight",
        "bottleneck.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    }
    assert c == {"fc.weight_g", "fc.weight_v", "fc.bias"}
    assert m.netC.state_dict()["fc.weight_g"].shape == (65, 1)


def test_round_trip_is_exact_and_atomic(tmp_path):
    m = _model(K=5)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p))
    save_fbc(m, tmp_path, "source")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source_B.pt", "source_C.pt", "source_F.pt"]
    m2 = _model(K=5)
    load_fbc(m2, tmp_path, "source")
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 64, 64)
    m.eval(), m2.eval()
    assert torch.equal(m(x), m2(x))


def test_class_count_mismatch_states_both_numbers(tmp_path):
    save_fbc(_model(K=31), tmp_path, "source")
    with pytest.raises(CheckpointError, match=r"has 31 classes but the config has data\.num_classes=65"):
        load_fbc(_model(K=65), tmp_path, "source")


def test_wrong_backbone_and_missing_files(tmp_path):
    save_fbc(_model("resnet18", K=5), tmp_path, "source")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_fbc(_model("resnet34", K=5), tmp_path, "source")
    with pytest.raises(CheckpointError, match="sfda train-source"):
        load_fbc(_model(K=5), tmp_path / "nothing", "source")


def test_loads_torch_weight_norm_checkpoints(tmp_path):
    """Checkpoints saved with torch.nn.utils.weight_norm (SHOT's) or the new parametrisation both load."""
    m = _model(K=7)
    lin = torch.nn.Linear(256, 7)
    wn_old = torch.nn.utils.weight_norm(torch.nn.Linear(256, 7), name="weight")
    wn_new = torch.nn.utils.parametrizations.weight_norm(lin, name="weight")
    x = torch.randn(3, 256)
    for wn in (wn_old, wn_new):
        save_fbc(m, tmp_path, "source")
        torch.save({f"fc.{k}": v for k, v in wn.state_dict().items()}, tmp_path / "source_C.pt")
        load_fbc(m, tmp_path, "source")
        assert torch.allclose(m.netC(x), wn(x), atol=1e-5)


def test_weight_norm_linear_matches_torch_and_deepcopies():
    import copy

    torch.manual_seed(0)
    ours = WeightNormLinear(8, 3)
    ref = torch.nn.utils.weight_norm(torch.nn.Linear(8, 3))
    with torch.no_grad():
        ref.weight_v.copy_(ours.weight_v)
        ref.weight_g.copy_(ours.weight_g * 1.7)
        ours.weight_g.mul_(1.7)
        ref.bias.copy_(ours.bias)
    x = torch.randn(4, 8)
    assert torch.allclose(ours(x), ref(x), atol=1e-6)
    assert torch.equal(copy.deepcopy(ours)(x), ours(x))


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_offline_imagenet_weights_error_says_what_to_download(monkeypatch, tmp_path):
    import urllib.error

    import torchvision

    def offline(self, *a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(CheckpointError) as e:
        _model("resnet18", K=5, pretrained=True)
    msg = str(e.value)
    assert "resnet18-f37072fd.pth" in msg and "download.pytorch.org" in msg and "model.weights_path" in msg
    # a local weights file works instead
    sd = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(sd, tmp_path / "r18.pth")
    m = _model("resnet18", K=5, pretrained=True, weights_path=str(tmp_path / "r18.pth"))
    assert torch.equal(m.netF.conv1.weight, sd["conv1.weight"])
    with pytest.raises(CheckpointError, match="not found"):
        _model("resnet18", K=5, weights_path=str(tmp_path / "none.pth"))
