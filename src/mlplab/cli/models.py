"""mlplab models|inspect|evaluate: the presets, a network's parameters, a checkpoint's scores."""

from __future__ import annotations

import json
from pathlib import Path

from mlplab.cli.common import DATA_DIR_HELP, data_dir, download_bar
from mlplab.errors import MlplabError


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="loss, accuracy, per-class accuracy and confusion",
        description="Evaluate a checkpoint on a dataset's test split.",
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a run directory or its model.safetensors"
    )
    p.add_argument("--dataset", help="dataset to evaluate on (default: the checkpoint's)")
    p.add_argument("--data-dir", help=DATA_DIR_HELP)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "models",
        help="list presets with their parameter counts",
        description="List the preset networks with their parameter counts.",
    )
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "inspect",
        help="module tree and named parameters",
        description="Print the module tree and every parameter's name, shape "
        "and count, for a checkpoint, a spec or a preset.",
    )
    p.add_argument(
        "target",
        metavar="CHECKPOINT|SPEC",
        help="a run directory, a .safetensors file, a spec like 784-128-10:relu, or a preset name",
    )
    p.set_defaults(func=cmd_inspect)


def cmd_evaluate(args) -> int:
    from mlplab.data.dataset import load_dataset
    from mlplab.data.registry import get_info
    from mlplab.io.checkpoint import load_checkpoint
    from mlplab.training.device import pick_device
    from mlplab.training.evaluate import evaluate

    device = pick_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    name = args.dataset or ckpt.info["dataset"]
    classes = get_info(name).classes
    if len(classes) != ckpt.model.spec.sizes[-1]:
        raise MlplabError(
            f"--dataset {name}: has {len(classes)} classes but the model "
            f"outputs {ckpt.model.spec.sizes[-1]}"
        )
    data = load_dataset(name, data_dir=data_dir(args), progress=download_bar())
    metrics = evaluate(ckpt.model, data.test.to(device), ckpt.norm, len(classes))
    if args.json:
        doc = {"checkpoint": str(ckpt.path), "dataset": name, **metrics.to_dict()}
        print(json.dumps({**doc, "classes": list(classes)}))
        return 0
    print(f"{ckpt.path}: {ckpt.info['spec']} on {name} test ({metrics.count} images)")
    print(f"loss {metrics.loss:.4f}  accuracy {metrics.accuracy:.2f}%")
    width = max(len(c) for c in classes)
    print("per-class accuracy:")
    for c, acc in zip(classes, metrics.per_class_accuracy, strict=True):
        print(f"  {c:>{width}}  {acc:6.2f}%")
    print("confusion matrix (rows: true, columns: predicted):")
    for row in metrics.confusion:
        print("  " + " ".join(f"{v:5d}" for v in row))
    return 0


def cmd_models(args) -> int:
    from mlplab.nn.model import build_model, count_parameters
    from mlplab.nn.presets import PRESETS

    rows = [
        {
            "preset": name,
            "spec": spec,
            "parameters": count_parameters(build_model(spec)),
            "description": text,
        }
        for name, (spec, text) in PRESETS.items()
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'preset':16} {'spec':24} {'parameters':>10}  description")
    for r in rows:
        print(f"{r['preset']:16} {r['spec']:24} {r['parameters']:>10,}  {r['description']}")
    return 0


def cmd_inspect(args) -> int:
    from mlplab.io.checkpoint import load_checkpoint
    from mlplab.nn.model import build_model, count_parameters
    from mlplab.nn.spec import parse_spec

    target = args.target
    if Path(target).exists() or target.endswith(".safetensors"):
        ckpt = load_checkpoint(target)
        model = ckpt.model
        info = ckpt.info
        accuracy = info.get("test_accuracy")
        print(
            f"{ckpt.path}: {info['spec']}, trained on {info['dataset']}, "
            f"test accuracy {accuracy if accuracy is not None else float('nan'):.2f}%"
        )
    else:
        model = build_model(parse_spec(target))
        print(f"spec: {model.spec}")
    print(model)
    print(f"{'name':24} {'shape':16} {'count':>10}")
    for name, p in model.named_parameters():
        print(f"{name:24} {str(tuple(p.shape)):16} {p.numel():>10,}")
    print(f"{'total':24} {'':16} {count_parameters(model):>10,}")
    return 0
