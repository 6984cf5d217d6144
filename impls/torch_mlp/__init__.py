"""The MNIST MLP in PyTorch, mirrored file for file by impls/flax_mlp (the twin).

Reading order, the same in both twins:

1. docs/walkthrough.md: forward and backward on one neuron (fundamentals.py runs it);
2. model.py: the MLP and its initial weights;
3. shared/init.py and shared/batches.py: how both frameworks get the same initial weights and the
   same batches in the same order;
4. train.py: the lesson, the training loop (loss_fn, train_step, evaluate, get_batch, train);
5. sweep.py, the advanced part: the sweep engine, a group of configs trained together at once.

runtime.py is the process plumbing around the loop (devices, precision, versions), fast.py the
loop's step as one compiled call (--set compile=true: speed only, outside the lesson), __main__.py
the command line (python -m impls.torch_mlp). `diff` any file with its twin to see only what the
frameworks do differently.
"""
