"""What compares the twins: executors, the results file, the report, TensorBoard."""
