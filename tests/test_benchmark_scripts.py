"""The benchmark scripts still run (CPU smoke at tiny sizes); their figures live in benchmarks/RESULTS.md."""

from __future__ import annotations

from benchmarks import bench_gpu, bench_metrics, bench_mmd, bench_train


def test_gpu_benchmark_script_runs_on_cpu():
    r = bench_gpu.main(["--device", "cpu", "--steps", "2", "--warmup", "1", "--batch", "16", "--repeats", "1",
                        "--n-train", "500"])  # fmt: skip
    v = r["variants"]["fp32"]
    assert r["model_gflops_per_step"] > 0 and v["images_per_s"] > 0 and v["fraction_of_peak"] is None
    assert bench_gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert bench_gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0


def test_metrics_benchmark_script_runs():
    r = bench_metrics.main(["--n", "400", "--d", "4", "--dci-model", "rf"])
    assert set(r["seconds"]) >= {"mig", "dci", "factorvae", "infomec", "lds"}


def test_mmd_benchmark_script_runs_and_agrees_with_the_plain_formulation():
    r = bench_mmd.main(["--repeats", "1", "--threads", "1"])  # asserts equal values inside
    assert set(r["cases"]) == {"128x128", "128x1024"} and all(c["speedup"] > 0 for c in r["cases"].values())


def test_bench_train_smoke():
    """The bare loop mirrors the preset (precision, MMD weight, scales, prior draws) and the eval share is a share."""
    r = bench_train.main(["--preset", "xy-mmd-gaussian", "--steps", "3", "--repeats", "1", "--device", "cpu"])
    assert r["bare_steps_per_s"] > 0 and r["sculpt_steps_per_s"] > 0
    assert 0 < r["eval_share_of_training"] < 1 and r["eval_n"] == 281
    assert 0 < r["curves_share_of_training"] < 1


def test_score_scale_benchmark_script_runs(tmp_path):
    from benchmarks import bench_score_scale

    r = bench_score_scale.main(["--ns", "200", "--ds", "5,8", "--old", "200x6", "--naive-lps", "200x6",
                                "--figure", str(tmp_path / "f.png")])  # fmt: skip
    assert {p["d"] for p in r["points"]} == {5, 8} and "lps-lgbm" in r["points"][0]["seconds"]
    old = r["old_vs_new"][0]
    assert old["dci"]["seconds_gbt"] > 0 and set(old["dci"]["diff"]) == {"D", "C", "I"}
    assert r["naive_lps"][0]["speedup"] > 0 and (tmp_path / "f.png").is_file()
