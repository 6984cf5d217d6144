"""TensorBoard event files from results records, framework-free (tensorboardX's protos): one run
per record, LOGDIR/<run name>/<backend>, so that a configuration's torch and JAX curves overlay, and
the grid's axes as HParams. From records alone, so `compare.py --report` gives the committed grids
to TensorBoard without training; tags and layout: docs/results-format.md#tensorboard-outtensorboard.
"""

from __future__ import annotations

import os
import pathlib
import time

from google.protobuf.struct_pb2 import ListValue, Value
from tensorboardX.proto.api_pb2 import DataType, Experiment, HParamInfo, MetricInfo, MetricName
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboardX.record_writer import RecordWriter
from tensorboardX.summary import hparams as hparams_summary

from comparison.results import config_of, varying
from shared.checkpoint import run_name
from shared.files import atomic_file, atomic_folder

# In the order the HParams dashboard lists them as metrics: what a grid is sorted by first.
TAGS = ("test/accuracy", "test/loss", "train/loss", "train/epoch_loss", "time/step_time_us")


def write_events(records: list[dict], logdir: str | os.PathLike) -> pathlib.Path:
    """One TensorBoard run per record under `logdir` (replacing what a run had there), and the
    HParams experiment they make: returns `logdir`."""
    logdir = pathlib.Path(logdir)
    axes = grid_axes(records)
    write_experiment(logdir, records, axes)
    for record in records:
        cfg = config_of(record)
        # Atomically: a reader (a running TensorBoard) never sees half a run, nor two copies.
        with atomic_folder(logdir / run_name(cfg) / record["backend"]) as tmp:
            write_run(tmp, scalars(record), hparams(record, axes))
    return logdir


def write_run(folder: pathlib.Path, points: list[tuple[str, int, float]], values: dict) -> None:
    """An event file in `folder`: the scalars `points` (tag, step, value), then the HParams
    session of `values`. Written record by record with tensorboardX's protos and RecordWriter,
    not its SummaryWriter, whose queue and thread took 3x as long (a 432-run grid: minutes)."""

    now = time.time()
    folder.mkdir(parents=True)
    writer = event_file(folder / f"events.out.tfevents.{int(now)}.mlp-twins")
    for tag, step, value in points:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        writer.write(Event(wall_time=now, step=step, summary=summary).SerializeToString())
    # The session's start and end (the experiment is write_experiment's).
    _, start, end = hparams_summary(values, {tag: 0.0 for tag in TAGS})
    for summary in (start, end):
        writer.write(Event(wall_time=now, summary=summary).SerializeToString())
    writer.close()


def write_experiment(logdir: pathlib.Path, records: list[dict], axes: list[str]) -> None:
    """The HParams experiment, in an event file of its own at `logdir`'s top (replacing one there):
    each hparam with the values it takes, numbers too (without it TensorBoard offers a number only
    a min-max range to filter by, not its values), and the metrics, test/accuracy first."""
    infos = []
    for name in ["backend", *axes, "status"]:  # TensorBoard lists them by name
        values = sorted({hparams(r, axes)[name] for r in records}, key=lambda v: (str(type(v)), v))
        kind = "STRING" if isinstance(values[0], str) else "FLOAT64"
        kind = "BOOL" if isinstance(values[0], bool) else kind
        domain = ListValue(values=[_value(v) for v in values])
        infos.append(
            HParamInfo(name=name, type=DataType.Value(f"DATA_TYPE_{kind}"), domain_discrete=domain)
        )
    metrics = [MetricInfo(name=MetricName(tag=tag)) for tag in TAGS]
    experiment = Experiment(hparam_infos=infos, metric_infos=metrics)
    content = HParamsPluginData(experiment=experiment, version=0).SerializeToString()
    plugin = SummaryMetadata.PluginData(plugin_name="hparams", content=content)
    value = Summary.Value(tag="_hparams_/experiment", metadata=SummaryMetadata(plugin_data=plugin))
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob("events.out.tfevents.*"):
        old.unlink()
    with atomic_file(logdir / f"events.out.tfevents.{int(time.time())}.mlp-twins") as tmp:
        writer = event_file(tmp)
        writer.write(
            Event(wall_time=time.time(), summary=Summary(value=[value])).SerializeToString()
        )
        writer.close()


def event_file(path: pathlib.Path) -> RecordWriter:
    """An event file at `path`, its version record written (what TensorBoard reads first)."""
    writer = RecordWriter(str(path))
    writer.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
    return writer


def _value(v) -> Value:
    if isinstance(v, bool):
        return Value(bool_value=v)
    return Value(string_value=v) if isinstance(v, str) else Value(number_value=float(v))


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
    """The config fields whose values differ among `records`, in Config's order (a field an older
    record lacks counts at its default)."""
    return varying([config_of(r) for r in records])


def hparams(record: dict, axes: list[str]) -> dict:
    """The HParams of a record's session: its value on each axis, its backend and its status."""
    cfg = config_of(record)
    return {
        **{a: getattr(cfg, a) for a in axes},
        "backend": record["backend"],
        "status": record["status"],
    }
