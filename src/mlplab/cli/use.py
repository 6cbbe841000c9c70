"""mlplab predict|export|serve: use a trained model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlplab.errors import MlplabError

MODEL_HELP = "a run directory, its model.safetensors, or an exported .onnx or .pt2"


def add_parsers(sub) -> None:
    _add_predict(sub)
    _add_export(sub)
    _add_serve(sub)


def _add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="top-k classes for image files",
        description="Print the top-k classes with probabilities for each image "
        "(PNG, JPEG, BMP, GIF; any size, colour or grayscale), prepared as "
        "MNIST was: grayscale, light ink on dark, cropped, scaled to 20 px, "
        "centred by mass in 28x28.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=MODEL_HELP)
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("-k", "--top-k", type=int, default=3, help="classes to list (default 3)")
    p.add_argument("--json", action="store_true", help="one JSON document with every result")
    p.add_argument("--show-input", metavar="DIR", help="save the 28x28 the model saw, as PNG")
    p.add_argument("--plot", metavar="DIR", help="save a view_classify PNG per image")
    p.set_defaults(func=cmd_predict)


def _add_export(sub) -> None:
    from mlplab.use.export import FORMATS

    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX or a torch.export program (.pt2)",
        description="Export with a dynamic batch axis; input `image` float32 "
        "(batch, 1, 28, 28) normalised, output `logits`; the class names and "
        "normalisation go in the file's metadata. `predict` and `serve` run .onnx and "
        ".pt2 files; torchscript is deprecated by torch.",
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a run directory or its model.safetensors"
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="onnx",
        help="onnx (default; needs the export extra), pt2 (torch.export), or torchscript "
        "(deprecated)",
    )
    p.add_argument("-o", "--output", help="file to write (default: beside the checkpoint)")
    p.set_defaults(func=cmd_export)


def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="a local web page to draw digits, and a JSON API",
        description="Serve the drawing page at / and the API at /api/predict, "
        "/api/model, /healthz and /docs.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help=MODEL_HELP)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 exposes it to your network)",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes, each with one intra-op thread (default 1)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="pool threads per process for decoding and inference (default 1)",
    )
    p.add_argument(
        "--queue",
        type=int,
        default=64,
        help="requests each process admits at once; one more gets 503 (default 64)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds a request may take; past it, 504 (default 30)",
    )
    p.set_defaults(func=cmd_serve)


def cmd_predict(args) -> int:
    from mlplab.use.predict import ImageError, load_predictor, predict

    if args.top_k < 1:
        raise MlplabError(f"--top-k must be at least 1, got {args.top_k}")
    predictor = load_predictor(args.checkpoint)
    results, failed = [], 0
    for image in args.images:
        try:
            results.append(predict(predictor, [image], top_k=args.top_k)[0])
        except ImageError as e:
            failed += 1
            print(f"mlplab: error: {e}", file=sys.stderr)
            if args.json:
                results.append({"name": image, "error": str(e)})
    for r in results:
        if isinstance(r, dict):
            continue
        stem = Path(r.name).stem
        if args.show_input:
            _save_input(r.input, Path(args.show_input) / f"{stem}-input.png")
        if args.plot:
            from mlplab.viz.plots import view_classify

            view_classify(
                r.input,
                r.probs,
                predictor.classes,
                Path(args.plot) / f"{stem}-classify.png",
                title=Path(r.name).name,
            )
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(args.checkpoint),
                    "results": [r if isinstance(r, dict) else r.to_dict() for r in results],
                }
            )
        )
    else:
        for r in results:
            if isinstance(r, dict):
                continue
            top = "  ".join(f"{c} {p:6.1%}" for c, p in r.top)
            print(f"{r.name}  {top}")
    return 1 if failed else 0


def _save_input(x, path: Path) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(x, 0, 1) * 255).round().astype(np.uint8)).save(path)


def cmd_export(args) -> int:
    from mlplab.io.checkpoint import load_checkpoint
    from mlplab.use.export import export

    print(export(load_checkpoint(args.checkpoint), args.format, args.output))
    return 0


def cmd_serve(args) -> int:
    import signal

    try:
        from mlplab.serve import ServeConfig, serve
    except ImportError:
        raise MlplabError(
            "serving needs fastapi and uvicorn: pip install 'mlplab[serve]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise MlplabError(f"--port must be 0 to 65535, got {args.port}")
    if args.workers < 1:
        raise MlplabError(f"--workers must be at least 1, got {args.workers}")
    config = _serve_config(ServeConfig, args)
    print(
        f"mlplab: serving {args.checkpoint} at http://{args.host}:{args.port}/ (Ctrl-C to stop)",
        flush=True,
    )
    # uvicorn finishes the requests in flight on SIGTERM, then raises the signal again; exiting
    # 0 then says the shutdown was clean (and SIGTERM during start-up exits at once).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.checkpoint, host=args.host, port=args.port, workers=args.workers, config=config)
    return 0


def _serve_config(ServeConfig, args):
    """The --threads, --queue and --timeout flags as a ServeConfig, errors named as flags."""
    from mlplab.errors import ConfigError

    try:
        return ServeConfig(threads=args.threads, queue=args.queue, timeout=args.timeout)
    except ConfigError as e:
        field = str(e).split()[0]
        raise MlplabError(f"--{field}{str(e)[len(field) :]}") from None
