"""metrics.jsonl: plain values, no NaN, torn lines skipped, resume keeps what the checkpoint covers."""

import numpy as np

from motif_jax.metrics import MetricsWriter, keep_metrics, last_value, read_metrics


def test_write_read_keep_and_tail(tmp_path):
    writer = MetricsWriter(tmp_path, "step")
    for step in (1, 2, 3):
        written = writer.write({"step": np.int64(step), "loss": np.float32(0.5), "kl": float("nan")})
    writer.close()
    assert written == {"step": 3, "loss": 0.5} and type(written["step"]) is int
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "lo')  # a kill mid-line
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    assert last_value(tmp_path / "metrics.jsonl", "step") == 3 and last_value(tmp_path / "none", "step", 0) == 0
    keep_metrics(tmp_path / "metrics.jsonl", lambda r: r["step"] <= 2, lambda kept: [{"step": 2.5}])
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl", strict=True)] == [1, 2, 2.5]
