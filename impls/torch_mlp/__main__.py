"""python -m impls.torch_mlp [--config NAME|FILE.toml] [--set KEY=VALUE ...] [--data-dir DIR]
[--device auto|cpu|gpu] [--save-models DIR]: train.py over every run of the config, printing the
tutorial's lines; `evaluate PATH`: a saved model, either twin's (torch.pt, jax.orbax), tested.
The twin: python -m impls.flax_mlp.
"""

import sys

from shared.checkpoint import CheckpointError, checkpoint_format, model_path
from shared.cli import backend_args, dataset, evaluate_args, fail, summary

PROG, FRAMEWORK = "python -m impls.torch_mlp", "PyTorch"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        return evaluate(argv[1:])
    args, runs = backend_args(PROG, FRAMEWORK, argv)
    # The framework is imported once the flags are known to be good, so that bad flags fail at once.
    from impls.torch_mlp import runtime, train

    try:
        device = runtime.resolve_device(args.device)
    except RuntimeError as e:
        fail(str(e), prog=PROG)
    for n, cfg in enumerate(runs, 1):
        print(
            f"== run {n}/{len(runs)} on {runtime.describe_device(device)}: {cfg.key()}", flush=True
        )
        data = dataset(cfg.dataset, args.data_dir)
        save = model_path(args.save_models, cfg, "torch") if args.save_models else None
        record = train.train(
            cfg, data, args.device, log=lambda line: print(line, flush=True), save=save
        )
        print(summary(record, len(data.test_labels)), flush=True)
        if save and record["status"] == "ok":
            print(f"Saved the model: {save}", flush=True)
    return 0


def evaluate(argv: list[str]) -> int:
    """`evaluate PATH`: test loss and accuracy of a saved model, this twin's or the other's."""
    prog = f"{PROG} evaluate"
    args, cfg = evaluate_args(prog, FRAMEWORK, argv)
    from impls.torch_mlp import runtime

    try:
        device = runtime.resolve_device(args.device)
        weights = read_weights(args.path, cfg)
    except (RuntimeError, CheckpointError) as e:
        fail(str(e), prog=prog)
    data = dataset(cfg.dataset, args.data_dir)
    loss, correct = evaluate_weights(cfg, weights, data, args.device)
    n = len(data.test_labels)
    where = runtime.describe_device(device)
    print(f"{args.path}: {cfg.describe()}, evaluated with {FRAMEWORK} on {where}")
    print(f"Test Loss: {loss:.4f}, correct: {correct} of {n}")
    print(f"Accuracy of the network on the {n} test images: {100 * correct / n:.2f} %")
    return 0


def read_weights(path: str, cfg):
    """A checkpoint of either twin as framework-free weights (shared/init.py), read by the twin that
    wrote it: torch.load for torch.pt, Orbax for jax.orbax. CheckpointError where it is bad."""
    backend = checkpoint_format(path)
    try:
        if backend == "torch":
            from impls.torch_mlp import checkpoint
        else:
            from impls.flax_mlp import checkpoint
    except ImportError as e:  # the other twin's framework is not installed
        raise CheckpointError(
            f"{path}: a {backend} checkpoint is read with {e.name}: "
            f"pip install 'mlp-twins[{backend}]'"
        ) from None
    return checkpoint.load(path, cfg)


def evaluate_weights(cfg, weights, data, device: str = "auto") -> tuple[float, int]:
    """(test loss, correct test images) of `weights`, either twin's, in this twin's MLP of `cfg`."""
    import torch

    from impls.torch_mlp import runtime
    from impls.torch_mlp.model import build_model, set_weights
    from impls.torch_mlp.train import evaluate as evaluate_model
    from shared.data import scale_images

    dev = runtime.resolve_device(device)
    with runtime.matmul_precision(cfg.tf32), runtime.dtype_scope(cfg.dtype):
        model = build_model(cfg)
        set_weights(model, weights)
        model.to(dev)  # its parameters onto the device
        images = torch.from_numpy(scale_images(data.test_images, cfg.dtype)).to(dev)
        labels = torch.from_numpy(data.test_labels).to(dev)
        loss, correct = evaluate_model(model, images, labels)
        return float(loss), int(correct)


if __name__ == "__main__":
    sys.exit(main())
