"""The mlplab command: flags -> config -> library call. Errors print as one line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path

from mlplab.errors import MlplabError

ENV_DATA = "MLPLAB_DATA"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _type_of(hint) -> tuple[type, bool]:
    """(base type, optional) of a config field's type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return (args[0], True) if args else (hint, False)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field: --batch-size sets batch_size."""
    from mlplab.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        base, _ = _type_of(hints[f.name])
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if base is bool:
            parser.add_argument(
                flag, action="store_true", default=argparse.SUPPRESS, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                type=base,
                choices=f.metadata.get("choices"),
                default=argparse.SUPPRESS,
                help=help_text,
                metavar=None if f.metadata.get("choices") else f.name.upper(),
            )


def build_parser() -> Parser:
    parser = Parser(
        prog="mlplab",
        description="Build, train, inspect and use MLP classifiers on MNIST-family images.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )

    p = sub.add_parser(
        "train",
        help="train a model and write a run directory",
        description="Train a model; writes <out>/<date-time>-<name>/ with "
        "config.json, metrics.jsonl, model.safetensors and model.json.",
    )
    p.add_argument(
        "--config", metavar="FILE.toml", help="read settings from a TOML file; flags override it"
    )
    add_config_flags(p)
    p.add_argument("--quiet", action="store_true", help="no per-evaluation lines or progress")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="loss, accuracy, per-class accuracy and confusion",
        description="Evaluate a checkpoint on a dataset's test split.",
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a run directory or its model.safetensors"
    )
    p.add_argument("--dataset", help="dataset to evaluate on (default: the checkpoint's)")
    p.add_argument("--data-dir", help=f"data folder (default: ${ENV_DATA})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "data",
        help="fetch datasets and describe them",
        description="Fetch a dataset, or describe where it lives and what is in it.",
    )
    data_sub = p.add_subparsers(
        dest="data_command", required=True, metavar="ACTION", parser_class=Parser
    )
    for name, func, text in (
        ("fetch", cmd_data_fetch, "find or download a dataset"),
        ("info", cmd_data_info, "files, checksums, class counts, pixel mean and std"),
    ):
        q = data_sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        q.add_argument("name", metavar="NAME", help="mnist, fashion-mnist or kmnist")
        q.add_argument("--data-dir", help=f"data folder (default: ${ENV_DATA})")
        q.add_argument("--no-download", action="store_true", help="only look on disk")
        if name == "info":
            q.add_argument("--json", action="store_true", help="print as JSON")
        q.set_defaults(func=func)

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

    from mlplab import cli_show, cli_use

    cli_show.add_parsers(sub, data_sub, f"data folder (default: ${ENV_DATA})")
    cli_use.add_parsers(sub)
    return parser


def _version() -> str:
    from mlplab import __version__

    return f"mlplab {__version__}"


def _data_dir(args) -> str | None:
    return getattr(args, "data_dir", None) or os.environ.get(ENV_DATA) or None


def _interactive(args) -> bool:
    return sys.stdout.isatty() and not getattr(args, "quiet", False)


def _download_bar():
    """A byte progress bar for downloads on a terminal; None elsewhere or without tqdm."""
    if not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    bars: dict[str, tqdm] = {}

    def progress(url: str, done: int, total: int | None):
        bar = bars.get(url)
        if bar is None:
            bar = bars[url] = tqdm(
                total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False
            )
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return progress


def cmd_train(args) -> int:
    from mlplab.config import TrainConfig, read_toml
    from mlplab.data import load_dataset
    from mlplab.runs import run

    values = {}
    source = "config"
    if args.config:
        # Merge, then validate once: the file may leave a field for a flag to complete.
        values.update(read_toml(args.config))
        source = args.config
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in names})
    if "preset" in vars(args) and "model" not in vars(args):
        values["model"] = None
    if "model" in vars(args) and "preset" not in vars(args):
        values["preset"] = None
    if not values.get("data_dir"):
        values["data_dir"] = _data_dir(args)
    config = TrainConfig.from_dict(values, source)
    data = load_dataset(config.dataset, data_dir=config.data_dir, progress=_download_bar())

    interactive = _interactive(args)
    bar = None
    if interactive:
        try:
            from tqdm import tqdm

            bar = tqdm(total=1, unit="it", leave=False, dynamic_ncols=True)
        except ImportError:
            bar = None
    write = bar.write if bar is not None else print

    def on_record(r: dict):
        if not interactive:
            return
        if r["kind"] == "eval":
            write(
                f"Iteration: {r['iteration']}. Loss: {r['train_loss']:.4f}. "
                f"Accuracy: {r['test_accuracy']:.2f}"
            )
        elif r["kind"] == "epoch":
            write(
                f"Epoch {r['epoch']}: train loss {r['train_loss']:.4f}, "
                f"train accuracy {r['train_accuracy']:.2f}"
            )

    def on_step(it: int, total: int):
        if bar is not None:
            if bar.total != total:
                bar.reset(total=total)
            if it % 10 == 0 or it == total:
                bar.update(it - bar.n)

    try:
        run_dir, result = run(
            config, data=data, on_record=on_record, on_step=on_step if bar else None
        )
    finally:
        if bar is not None:
            bar.close()
    line = (
        f"Test accuracy: {result.test.accuracy:.2f}% (loss {result.test.loss:.4f}) "
        f"after {result.iterations} iterations in {result.seconds:.1f}s"
    )
    if result.val is not None:
        line += (
            f"; validation {result.val.accuracy:.2f}% (best at iteration {result.best_iteration})"
        )
    print(line)
    _train_pictures(run_dir, data)
    print(f"Run saved to {run_dir}")
    return 0


def _train_pictures(run_dir: Path, data) -> None:
    """The curves and the confusion matrix of a finished run, when matplotlib is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    from mlplab.report import plot_run

    plot_run(run_dir, data, only=("curves", "confusion"))


def cmd_evaluate(args) -> int:
    from mlplab.checkpoint import load_checkpoint
    from mlplab.data import load_dataset
    from mlplab.datasets import get_info
    from mlplab.evaluate import evaluate
    from mlplab.train import pick_device

    device = pick_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    name = args.dataset or ckpt.info["dataset"]
    classes = get_info(name).classes
    if len(classes) != ckpt.model.spec.sizes[-1]:
        raise MlplabError(
            f"--dataset {name}: has {len(classes)} classes but the model "
            f"outputs {ckpt.model.spec.sizes[-1]}"
        )
    data = load_dataset(name, data_dir=_data_dir(args), progress=_download_bar())
    metrics = evaluate(ckpt.model, data.test.to(device), ckpt.norm, len(classes))
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(ckpt.path),
                    "dataset": name,
                    **metrics.to_dict(),
                    "classes": list(classes),
                }
            )
        )
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


def cmd_data_fetch(args) -> int:
    from mlplab.datasets import locate

    files = locate(
        args.name, data_dir=_data_dir(args), download=not args.no_download, progress=_download_bar()
    )
    folders = sorted({str(p.parent) for p in files.values()})
    print(f"{args.name}: verified, in {', '.join(folders)}")
    return 0


def cmd_data_info(args) -> int:
    import torch

    from mlplab.data import load_dataset, pixel_stats
    from mlplab.datasets import check_file, get_info

    info = get_info(args.name)
    data = load_dataset(args.name, data_dir=_data_dir(args), download=not args.no_download)
    report = {"name": args.name, "classes": list(info.classes), "files": {}, "splits": {}}
    for role, path in data.files.items():
        problem = check_file(path, info.files[role])
        report["files"][role] = {"path": str(path), "checksum": problem or "ok"}
    for split_name in ("train", "test"):
        split = getattr(data, split_name)
        mean, std = pixel_stats(split.x)
        counts = torch.bincount(split.y, minlength=info.num_classes).tolist()
        report["splits"][split_name] = {
            "count": len(split),
            "per_class": counts,
            "mean": mean,
            "std": std,
        }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.name}: {info.num_classes} classes")
    for role, f in report["files"].items():
        print(f"  {role:13} {f['path']}  checksum {f['checksum']}")
    width = max(len(c) for c in info.classes)
    for split_name, s in report["splits"].items():
        print(f"{split_name}: {s['count']} images, pixel mean {s['mean']:.4f}, std {s['std']:.4f}")
        for c, n in zip(info.classes, s["per_class"], strict=True):
            print(f"  {c:>{width}}  {n}")
    return 0


def cmd_models(args) -> int:
    from mlplab.models import PRESETS, build_model, count_parameters

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
    from mlplab.checkpoint import load_checkpoint
    from mlplab.models import build_model, count_parameters, parse_spec

    target = args.target
    if Path(target).exists() or target.endswith(".safetensors"):
        ckpt = load_checkpoint(target)
        model = ckpt.model
        info = ckpt.info
        print(
            f"{ckpt.path}: {info['spec']}, trained on {info['dataset']}, "
            f"test accuracy {info.get('test_accuracy', float('nan')):.2f}%"
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MlplabError as e:
        print(f"mlplab: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except OSError as e:
        # An unwritable --out or a vanished file: the OS's reason, on one line.
        where = f"{e.filename}: " if e.filename else ""
        print(f"mlplab: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mlplab: interrupted", file=sys.stderr)
        return 130
