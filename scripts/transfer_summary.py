"""Fine-tuning vs feature extractor per learning rate with the winners marked, the backbone comparison, and the
learning curves of both modes (rule: transfer_summary)."""
import json
from pathlib import Path

import pandas as pd

from dlperf.atomic import write_csv
from dlperf.report.figures import learning_curves
from dlperf.report.fidelity import of_job
from dlperf.report.style import save_figure
from dlperf.report.tables import write_table
from dlperf.transfer.summary import mark_winners
from dlperf.workflow import script_logging

# chance_acc: the accuracy of guessing, 1 / classes, against which the claims ledger reads both modes' accuracy
SUMMARY_COLUMNS = ["mode", "lr", "best_val_acc", "final_test_acc", "epochs", "train_seconds", "device", "chance_acc"]


def run_record(metrics_path):
    run_dir = Path(metrics_path).parent
    metrics = json.loads(Path(metrics_path).read_text())
    prov = json.loads((run_dir / "provenance.json").read_text())
    epochs = pd.read_csv(run_dir / "epochs.csv")
    t = prov["config"]["transfer"]
    return {"mode": t["mode"], "backbone": t["backbone_name"], "lr": t["lr"],
            "best_val_acc": metrics["best_val_acc"], "final_test_acc": metrics["best_test_acc"],
            "epochs": int(epochs.epoch.iloc[-1]), "train_seconds": float(epochs.epoch_seconds.sum()),
            "device": prov.get("gpu") or prov.get("cpu")}, epochs


with script_logging(snakemake.log[0]):
    inputs = snakemake.input
    finetune = [run_record(p) for p in inputs.finetune]
    feature = [run_record(p) for p in inputs.feature]
    chance = 1 / len(pd.read_csv(inputs.classes))
    summary = pd.DataFrame([r for r, _ in finetune + feature]).assign(chance_acc=chance)[SUMMARY_COLUMNS]
    write_csv(snakemake.output.summary, summary)
    winner = mark_winners(summary)
    shown = summary.drop(columns="chance_acc").assign(winner=["yes" if w else "" for w in winner],
                                                      best_val_acc=100 * summary.best_val_acc,
                                                      final_test_acc=100 * summary.final_test_acc)
    write_table(shown, snakemake.output.table, formats={"best_val_acc": ".1f", "final_test_acc": ".1f",
                                                        "train_seconds": ".1f", "lr": "g"},
                bold_rows=set(summary.index[winner]))
    fidelity = of_job(snakemake)
    save_figure(learning_curves({f"lr={r['lr']:g}": e for r, e in finetune}, splits=("train", "val")),
                snakemake.output.finetune_curves, fidelity)
    save_figure(learning_curves({f"lr={r['lr']:g}": e for r, e in feature}, splits=("train", "val")),
                snakemake.output.feature_curves, fidelity)

    caches = {Path(p).name.removesuffix(".provenance.json"): json.loads(Path(p).read_text()) for p in inputs.caches}
    rows = []
    for path in inputs.comparison:
        record, _ = run_record(path)
        cache = caches[record["backbone"]]
        rows.append({"backbone": record["backbone"], "lr": record["lr"], "val_acc": record["best_val_acc"],
                     "cache_seconds": cache["cache_seconds"], "train_seconds": record["train_seconds"],
                     "device": record["device"]})
    backbones = pd.DataFrame(rows, columns=["backbone", "lr", "val_acc", "cache_seconds", "train_seconds", "device"])
    write_csv(snakemake.output.backbones, backbones)
    write_table(backbones.assign(val_acc=100 * backbones.val_acc), snakemake.output.backbones_table,
                formats={"val_acc": ".1f", "cache_seconds": ".2f", "train_seconds": ".2f", "lr": "g"})
    print(summary.to_string(index=False))
    print(backbones.to_string(index=False))
