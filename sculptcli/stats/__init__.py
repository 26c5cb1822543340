"""Statistics shared by the objectives and the metrics: MMD² and its permutation two-sample test."""
