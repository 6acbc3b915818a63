"""``studio cache calibrate``: measure a model's step-cache calibration and keep it."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="step caching: calibrate a model")
    csub = p.add_subparsers(dest="cache_command", required=True)
    cal = csub.add_parser("calibrate", help="measure how a model's output evolves along t (one "
                          "reference run), so --cache can skip predictable steps")  # fmt: skip
    cal.add_argument("--model", default="", help="model folder or id (default: the default model)")
    cal.add_argument("--steps", type=int, default=50, help="steps of the reference run")
    cal.add_argument("--out", type=Path,
                     help="where to write it (default: STUDIO_HOME/calibrations)")
    cal.set_defaults(func=cmd_cache_calibrate)


def cmd_cache_calibrate(args: argparse.Namespace) -> int:
    from studio.models.calibrations import calibration_path, save_calibration
    from studio.service.calibration import calibrate
    from studio.service.catalog import ModelCache
    from studio.service.settings import load_settings

    cache = ModelCache(load_settings())
    calibration = calibrate(cache, args.model, steps=args.steps)
    model = cache.loaded
    path = save_calibration(calibration, args.out or calibration_path(model.family,
                                                                       model.variant))
    print(f"wrote {path} ({len(calibration.points)} points); use it with --cache magcache")
    return 0
