"""What compares the twins: the executors, the results file, the report, the machine probe."""
