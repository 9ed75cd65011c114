"""Published numbers shown by ``sfda table`` beside ours (accuracy in %, mean of the papers' seeds).

Each benchmark has its task order and a list of rows ``(label, source, values)`` where ``values`` maps a
task to its number; "avg" is the published average. A row is printed under our row of the same label
(case and spaces ignored), so configs set ``label`` to the paper's row name.
"""
from __future__ import annotations

OH_TASKS = ["Ar_Cl", "Ar_Pr", "Ar_Rw", "Cl_Ar", "Cl_Pr", "Cl_Rw", "Pr_Ar", "Pr_Cl", "Pr_Rw", "Rw_Ar", "Rw_Cl", "Rw_Pr"]
O31_TASKS = ["A_D", "A_W", "D_A", "D_W", "W_A", "W_D"]
DN_TASKS = ["R_C", "R_P", "P_C", "C_S", "S_P", "R_S", "P_R"]


def _row(label, source, values, avg=None, tasks=OH_TASKS):
    vals = dict(zip(tasks, values))
    if avg is not None:
        vals["avg"] = avg
    return (label, source, vals)


SHOT_RESULTS = "SHOT results.md"
NS_PAPER = "NS paper, Table IV"

PAPER = {
    "office-home": {
        "tasks": OH_TASKS,
        "rows": [
            _row("Source only", SHOT_RESULTS, [44.6, 67.3, 74.8, 52.7, 62.7, 64.8, 53.0, 40.6, 73.2, 65.3, 45.4, 78.0], 60.2),
            _row("SHOT-IM", SHOT_RESULTS, [55.4, 76.6, 80.4, 66.9, 74.3, 75.4, 65.6, 54.8, 80.7, 73.7, 58.4, 83.4], 70.5),
            _row("SHOT", SHOT_RESULTS, [57.1, 78.1, 81.5, 68.0, 78.2, 78.1, 67.4, 54.9, 82.2, 73.3, 58.8, 84.3], 71.8),
            _row("SHOT", NS_PAPER, [58.0, 78.8, 81.9, 69.4, 79.7, 78.7, 68.2, 55.0, 81.9, 73.8, 58.7, 83.8], 72.3),
            _row("Focal", NS_PAPER, [57.9, 78.8, 82.0, 69.2, 79.8, 78.6, 68.3, 55.4, 81.8, 73.7, 59.9, 83.7], 72.4),
            _row("GCE", NS_PAPER, [57.5, 71.7, 80.9, 68.8, 76.5, 71.3, 66.9, 54.5, 80.9, 73.8, 58.7, 84.1], 71.5),
            _row("LS", NS_PAPER, [58.0, 78.7, 82.0, 69.3, 79.7, 78.6, 68.3, 55.3, 81.9, 73.8, 59.7, 83.9], 72.4),
            _row("NLNL", NS_PAPER, [56.4, 77.5, 80.1, 67.4, 75.6, 76.3, 65.5, 54.8, 80.5, 73.4, 59.0, 83.5], 70.8),
            _row("SCE", NS_PAPER, [54.5, 78.3, 80.6, 63.8, 76.7, 76.2, 65.3, 50.4, 80.6, 70.5, 53.7, 82.8], 69.4),
            _row("APL", NS_PAPER, [57.2, 77.8, 82.1, 68.9, 76.8, 78.5, 67.7, 54.1, 81.5, 73.1, 58.4, 84.1], 71.7),
            _row("LOW", NS_PAPER, [58.1, 78.8, 82.1, 69.5, 79.7, 78.5, 68.2, 55.3, 81.9, 73.8, 59.5, 83.9], 72.4),
            _row("PolyLoss", NS_PAPER, [57.9, 78.6, 82.0, 69.7, 79.7, 78.5, 67.9, 55.0, 81.9, 73.5, 59.6, 83.9], 72.3),
            _row("ANL", NS_PAPER, [57.1, 77.6, 80.3, 67.5, 75.6, 76.4, 65.7, 54.9, 80.6, 73.4, 59.2, 83.8], 71.0),
            _row("AUL", NS_PAPER, [56.0, 77.9, 81.6, 66.6, 79.0, 71.7, 66.0, 52.4, 81.1, 72.6, 57.5, 84.0], 71.0),
            _row("CE+MAE", NS_PAPER, [56.9, 77.9, 80.6, 68.4, 76.0, 76.9, 66.4, 54.4, 80.8, 73.6, 59.2, 84.0], 71.3),
            _row("CE+OGC", NS_PAPER, [58.6, 79.0, 82.1, 69.9, 79.1, 78.6, 68.6, 55.0, 81.6, 73.8, 60.0, 84.1], 72.5),
            _row("CBS", NS_PAPER, [57.9, 78.3, 81.7, 68.7, 79.6, 78.3, 68.3, 55.4, 82.1, 72.8, 59.4, 84.2], 72.2),
            _row("SRS", NS_PAPER, [57.4, 78.7, 81.6, 68.4, 79.5, 78.5, 68.0, 56.1, 81.9, 73.5, 58.4, 84.5], 72.2),
            _row("PBS", NS_PAPER, [57.6, 78.5, 82.2, 68.4, 79.7, 78.6, 68.4, 56.3, 82.2, 73.5, 59.5, 83.9], 72.4),
            _row("SHOT+NS-WS", NS_PAPER, [59.1, 79.1, 82.4, 70.0, 79.8, 78.8, 68.8, 57.0, 82.3, 73.9, 60.1, 85.0], 73.0),
        ],
    },
    "office31": {
        "tasks": O31_TASKS,
        "rows": [
            _row("Source only", SHOT_RESULTS, [80.8, 76.9, 60.3, 95.3, 63.6, 98.7], 79.3, O31_TASKS),
            _row("SHOT-IM", SHOT_RESULTS, [90.6, 91.2, 72.5, 98.3, 71.4, 99.9], 87.3, O31_TASKS),
            _row("SHOT", SHOT_RESULTS, [94.0, 90.1, 74.7, 98.4, 74.3, 99.9], 88.6, O31_TASKS),
        ],
    },
    "visda-c": {
        "tasks": ["T_V"],
        "rows": [
            _row("Source only", SHOT_RESULTS, [46.6], 46.6, ["T_V"]),
            _row("SHOT-IM", SHOT_RESULTS, [80.4], 80.4, ["T_V"]),
            _row("SHOT", SHOT_RESULTS, [82.9], 82.9, ["T_V"]),
        ],
    },
    "digits": {
        "tasks": ["svhn_mnist", "usps_mnist", "mnist_usps"],
        "rows": [
            _row("Source only", SHOT_RESULTS, [70.2, 88.0, 79.7], 79.3, ["svhn_mnist", "usps_mnist", "mnist_usps"]),
            _row("SHOT-IM", SHOT_RESULTS, [99.0, 97.6, 97.7], 98.2, ["svhn_mnist", "usps_mnist", "mnist_usps"]),
            _row("SHOT", SHOT_RESULTS, [98.9, 98.0, 97.9], 98.3, ["svhn_mnist", "usps_mnist", "mnist_usps"]),
        ],
    },
    "digits-offline": {"tasks": ["mnist5k_uci", "uci_mnist5k"], "rows": []},
    "domainnet-126": {"tasks": DN_TASKS, "rows": []},
}


def task_display(task: str) -> str:
    return task.replace("_", "→") if task.count("_") == 1 else task
