import torch
import torch.nn.functional as F

from sfda.clustering import shot_pseudo_labels


def test_two_obvious_clusters_are_recovered_despite_wrong_predictions():
    # 3 classes; features form tight clusters around three directions, but the network's softmax puts
    # one sample of cluster 0 in class 1. Clustering must assign it back to 0.
    dirs = torch.eye(3) * 5
    feats = torch.cat(
        [dirs[0] + 0.01 * torch.randn(4, 3), dirs[1] + 0.01 * torch.randn(4, 3), dirs[2] + 0.01 * torch.randn(4, 3)]
    )
    truth = torch.tensor([0] * 4 + [1] * 4 + [2] * 4)
    probs = F.one_hot(truth, 3).float() * 0.8 + 0.1
    probs[0] = torch.tensor([0.2, 0.7, 0.1])  # the network is wrong about sample 0
    out = shot_pseudo_labels(feats, probs)
    assert torch.equal(out.labels, truth)


def test_known_answer_by_hand():
    # Two 1-d features after appending 1 and normalising: f = [x, 1]/norm. Soft centroids are computed
    # from the probabilities, then one hard round.
    feats = torch.tensor([[3.0], [2.5], [-3.0], [-2.0]])
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
    f = F.normalize(torch.cat([feats, torch.ones(4, 1)], 1), dim=1)
    c = probs.t() @ f / probs.sum(0, keepdim=True).t()
    d = 1 - f @ F.normalize(c, dim=1).t()
    first = d.argmin(1)
    assert first.tolist() == [0, 0, 1, 1]
    out = shot_pseudo_labels(feats, probs)
    assert out.labels.tolist() == [0, 0, 1, 1]
    # the final centroids are the hard means of the assigned (normalised) features
    assert torch.allclose(out.centroids[0], f[:2].mean(0), atol=1e-6)
    assert torch.allclose(out.centroids[1], f[2:].mean(0), atol=1e-6)


def test_empty_cluster_never_captures_every_sample():
    # The network predicts class 2 for sample 4, but in the soft round nobody is closest to class 2's
    # centroid, so cluster 2 is empty after round 1. Before SHOT's 2022 fix, class 2 stayed in the label set
    # with a zero centroid (NaN cosine distance) and every sample became class 2.
    feats = torch.tensor([[5.0, 0.0], [4.0, 0.5], [0.0, 5.0], [0.5, 4.0], [4.5, 0.2]])
    probs = torch.tensor([[0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.45, 0.1, 0.45001]])
    assert probs.argmax(1).tolist() == [0, 0, 1, 1, 2]
    out = shot_pseudo_labels(feats, probs)
    assert out.labels.tolist() == [0, 0, 1, 1, 0]
    assert torch.isfinite(out.distances[:, :2]).all()
    assert torch.isinf(out.distances[:, 2]).all()  # class 2 is not live in the last round


def test_threshold_removes_small_classes():
    feats = torch.tensor([[5.0, 0.0], [4.0, 0.5], [4.2, 0.1], [0.0, 5.0], [0.5, 4.0], [0.2, 4.5], [4.5, 4.4]])
    probs = torch.tensor([[0.9, 0.05, 0.05]] * 3 + [[0.05, 0.9, 0.05]] * 3 + [[0.1, 0.1, 0.8]])
    out = shot_pseudo_labels(feats, probs, threshold=1)  # class 2 has one member: not live
    assert 2 not in out.labels.tolist()
    out = shot_pseudo_labels(feats, probs, threshold=0)
    assert out.labels.tolist()[-1] == 2
