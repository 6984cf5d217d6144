"""TensorBoard event files from results records: a run's curves and its grid's axes as HParams.

Framework-free (tensorboardX writes the files; neither torch nor JAX is imported), and written from
records alone, so that `compare.py --report OUT` gives the committed grids of docs/results/ to
TensorBoard without training. Layout, one TensorBoard run per record:

    LOGDIR/<run name>/<backend>     run name: shared.checkpoint.run_name, the configuration

so the torch and JAX runs of a configuration overlay in the scalar view (filter the runs by its
name). Tags: `train/loss` at every recorded step (the record's loss_curve; step numbers from 1),
`train/epoch_loss`, `test/loss` and `test/accuracy` at every epoch (step = epoch, from 1), and
`time/step_time_us`, the steady-state step time, once at the last step. Each run is an HParams
session: the grid's axes (the config fields its records vary), `backend` and `status`, so that the
HParams dashboard sorts and filters the configurations by final test accuracy. TensorBoard keeps
scalars as float32.
"""

from __future__ import annotations

import os
import pathlib
import time
from dataclasses import fields

from shared.checkpoint import atomic_folder, run_name
from shared.config import Config

TAGS = ("train/loss", "train/epoch_loss", "test/loss", "test/accuracy", "time/step_time_us")


def write_events(records: list[dict], logdir: str | os.PathLike) -> pathlib.Path:
    """One TensorBoard run per record under `logdir` (replacing what a run had there): returns
    `logdir`. ImportError where tensorboardX is not installed."""
    logdir = pathlib.Path(logdir)
    axes = grid_axes(records)
    for record in records:
        cfg = Config(**record["config"])
        # Atomically: a reader (a running TensorBoard) never sees half a run, nor two copies.
        with atomic_folder(logdir / run_name(cfg) / record["backend"]) as tmp:
            write_run(tmp, scalars(record), hparams(record, axes))
    return logdir


def write_run(folder: pathlib.Path, points: list[tuple[str, int, float]], values: dict) -> None:
    """An event file in `folder`: the scalars `points` (tag, step, value), then the HParams
    session of `values`. Written record by record with tensorboardX's protos and RecordWriter,
    not its SummaryWriter, whose queue and thread took 3x as long (a 432-run grid: minutes)."""
    # Imported here: the report needs no TensorBoard.
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.summary_pb2 import Summary
    from tensorboardX.record_writer import RecordWriter
    from tensorboardX.summary import hparams as hparams_summary

    now = time.time()
    folder.mkdir(parents=True)
    writer = RecordWriter(str(folder / f"events.out.tfevents.{int(now)}.mlp-twins"))
    writer.write(Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
    for tag, step, value in points:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        writer.write(Event(wall_time=now, step=step, summary=summary).SerializeToString())
    # The session's start and end. No experiment summary: TensorBoard then gathers the hparams
    # and their values over every run, and the metrics from the runs' scalar tags.
    _, start, end = hparams_summary(values, {tag: 0.0 for tag in TAGS})
    for summary in (start, end):
        writer.write(Event(wall_time=now, summary=summary).SerializeToString())
    writer.close()


def scalars(record: dict) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar a record gives TensorBoard, in the order written."""
    every = record.get("loss_curve_every", 1)
    out = [
        ("train/loss", i * every + 1, loss)
        for i, loss in enumerate(record["loss_curve"])
        if loss is not None  # a NaN/inf loss, kept as null: no point
    ]
    for entry in record["epochs"]:
        out.append(("train/epoch_loss", entry["epoch"], entry["train_loss"]))
        out.append(("test/loss", entry["epoch"], entry["test_loss"]))
        out.append(("test/accuracy", entry["epoch"], entry["test_accuracy"]))
    if record.get("step_time_us") is not None:
        out.append(("time/step_time_us", record["steps"], record["step_time_us"]))
    return out


def grid_axes(records: list[dict]) -> list[str]:
    """The config fields whose values differ among `records`, in Config's order."""
    names = [f.name for f in fields(Config)]
    return [n for n in names if len({repr(r["config"].get(n)) for r in records}) > 1]


def hparams(record: dict, axes: list[str]) -> dict:
    """The HParams of a record's session: its value on each axis, its backend and its status."""
    return {
        **{a: record["config"][a] for a in axes},
        "backend": record["backend"],
        "status": record["status"],
    }
