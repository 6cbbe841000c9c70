"""mlplab data fetch|info|show: find or download a dataset, describe it, look at it."""

from __future__ import annotations

import json

from mlplab.cli.common import DATA_DIR_HELP, Parser, data_dir, download_bar, load
from mlplab.errors import MlplabError


def add_parsers(sub) -> None:
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
        q.add_argument("--data-dir", help=DATA_DIR_HELP)
        q.add_argument("--no-download", action="store_true", help="only look on disk")
        if name == "info":
            q.add_argument("--json", action="store_true", help="print as JSON")
        q.set_defaults(func=func)

    q = data_sub.add_parser(
        "show",
        help="a grid of sample images with their labels",
        description="Write a PNG grid of sample images with their labels.",
    )
    q.add_argument("name", metavar="NAME", help="mnist, fashion-mnist or kmnist")
    q.add_argument("--split", choices=("train", "test"), default="train")
    q.add_argument("--count", type=int, default=64, help="images to show, up to 64")
    q.add_argument("-o", "--output", help="PNG to write (default: NAME-samples.png)")
    q.add_argument("--data-dir", help=DATA_DIR_HELP)
    q.set_defaults(func=cmd_data_show)


def cmd_data_fetch(args) -> int:
    from mlplab.data.sources import locate

    files = locate(
        args.name, data_dir=data_dir(args), download=not args.no_download, progress=download_bar()
    )
    folders = sorted({str(p.parent) for p in files.values()})
    print(f"{args.name}: verified, in {', '.join(folders)}")
    return 0


def cmd_data_info(args) -> int:
    from mlplab.data.dataset import load_dataset
    from mlplab.data.registry import get_info

    info = get_info(args.name)
    data = load_dataset(args.name, data_dir=data_dir(args), download=not args.no_download)
    report = _describe(data, info)
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


def _describe(data, info) -> dict:
    """Files with their checksum verdicts; per split, the count, class counts, mean and std."""
    import torch

    from mlplab.data.sources import check_file
    from mlplab.nn.normalization import value_stats

    report = {"name": info.name, "classes": list(info.classes), "files": {}, "splits": {}}
    for role, path in data.files.items():
        problem = check_file(path, info.files[role])
        report["files"][role] = {"path": str(path), "checksum": problem or "ok"}
    for split_name in ("train", "test"):
        split = getattr(data, split_name)
        mean, std = value_stats(split.x)
        counts = torch.bincount(split.y, minlength=info.num_classes).tolist()
        report["splits"][split_name] = {
            "count": len(split),
            "per_class": counts,
            "mean": mean,
            "std": std,
        }
    return report


def cmd_data_show(args) -> int:
    from mlplab.viz.plots import sample_grid

    if not 1 <= args.count <= 64:
        raise MlplabError(f"--count must be between 1 and 64, got {args.count}")
    data = load(args, args.name)
    split = getattr(data, args.split)
    out = args.output or f"{args.name}-samples.png"
    print(
        sample_grid(
            split.x, split.y, data.classes, out, n=args.count, title=f"{args.name} {args.split}"
        )
    )
    return 0
